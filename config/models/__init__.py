"""The site file (PRODUCT §2) and equipment templates (§3) as pydantic models, one module per area.

Models check the shape of each section; `config.site` checks what spans sections (a bus that
exists, unique ids, rule expressions naming real points) and resolves templates into devices.
"""

from config.models.base import ID_PATTERN, POINT_PATTERN, Duration, Priority, Strict, Text, Urgency
from config.models.equipment import (
    Asset,
    BaseloadRise,
    BusSim,
    DeviceModbus,
    DeviceMqtt,
    DeviceSpec,
    ModbusBus,
    Template,
    Workarounds,
)
from config.models.history import HistoryConfig
from config.models.maintenance import CountPlan, PlanSpec, TicketsConfig, TicketTarget
from config.models.playbooks import JOIN_WITHIN, PlaybookSpec, Role, StepSpec, TriggerSpec
from config.models.points import (
    ORDERS,
    POINT_TAGS,
    REGISTER_COUNT,
    ModbusPoint,
    MqttPoint,
    Point,
    PointBase,
    PointType,
    Register,
)
from config.models.rules import CommLossSpec, RuleSpec
from config.models.services import (
    ConsoleConfig,
    InfluxConfig,
    MqttConfig,
    SiteInfo,
    StorageConfig,
    TlsConfig,
)
from config.models.sitefile import SiteFile

__all__ = [
    "ID_PATTERN",
    "JOIN_WITHIN",
    "ORDERS",
    "POINT_PATTERN",
    "POINT_TAGS",
    "REGISTER_COUNT",
    "Asset",
    "BaseloadRise",
    "BusSim",
    "CommLossSpec",
    "ConsoleConfig",
    "CountPlan",
    "DeviceModbus",
    "DeviceMqtt",
    "DeviceSpec",
    "Duration",
    "HistoryConfig",
    "InfluxConfig",
    "ModbusBus",
    "ModbusPoint",
    "MqttConfig",
    "MqttPoint",
    "PlanSpec",
    "PlaybookSpec",
    "Point",
    "PointBase",
    "PointType",
    "Priority",
    "Register",
    "Role",
    "RuleSpec",
    "SiteFile",
    "SiteInfo",
    "StepSpec",
    "StorageConfig",
    "Strict",
    "Template",
    "Text",
    "TicketTarget",
    "TicketsConfig",
    "TlsConfig",
    "TriggerSpec",
    "Urgency",
    "Workarounds",
]

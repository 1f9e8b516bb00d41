"""The whole site file as written; `config.site` resolves it into a `Site`."""

from __future__ import annotations

from config.alarm_options import AlarmsConfig, NotifyConfig
from config.models.base import Strict
from config.models.equipment import DeviceSpec, ModbusBus
from config.models.history import HistoryConfig
from config.models.maintenance import PlanSpec, TicketsConfig
from config.models.playbooks import PlaybookSpec
from config.models.rules import RuleSpec
from config.models.services import ConsoleConfig, InfluxConfig, MqttConfig, SiteInfo, StorageConfig


class SiteFile(Strict):
    """The whole site file, as written; see `config.site.Site` for the resolved form."""

    site: SiteInfo
    storage: StorageConfig = StorageConfig()
    history: HistoryConfig = HistoryConfig()
    mqtt: MqttConfig = MqttConfig()
    influx: InfluxConfig | None = None
    console: ConsoleConfig = ConsoleConfig()
    modbus: list[ModbusBus] = []
    devices: list[DeviceSpec]
    rules: list[RuleSpec] = []
    maintenance: list[PlanSpec] = []
    tickets: TicketsConfig = TicketsConfig()  # service targets per urgency, alarms during work
    alarms: AlarmsConfig = AlarmsConfig()  # chattering and flood thresholds
    notify: NotifyConfig = NotifyConfig()  # notification channels and escalation per priority
    playbooks: list[PlaybookSpec] = []  # overrides of built-in playbooks by id, or new ones (§11)

"""Operations reports (PRODUCT §11): shift handover and energy, shared by the CLI and the API."""

"""What the serving app can be told (``TICKFLOW_SERVING_*``); its address is ``Settings.host`` and
``Settings.ports.serving``, like every other service's."""

from __future__ import annotations

import re

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# A token goes into a URL, a header and a cookie as it is; shorter ones are too easy to guess.
TOKEN = re.compile(r"[A-Za-z0-9._~-]{16,}")


class ServingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TICKFLOW_SERVING_", extra="ignore", frozen=True)

    poll_ms: int = Field(
        default=300, ge=50, description="How often a live feed reads md:latest (one multi-get for its selection)."
    )
    heartbeat_s: float = Field(
        default=5.0, gt=0, description="A live feed with no change sends a heartbeat this often."
    )
    max_selection: int = Field(default=50, ge=1, description="Most instruments one request or live feed may select.")
    reference_refresh_s: float = Field(
        default=300.0, gt=0, description="How often the instrument list is reloaded from Hive (ref.instruments)."
    )
    reference_from_hive: bool = Field(
        default=True, description="False: list only the instruments found in md:latest (no HiveServer2 needed)."
    )
    history_limit: int = Field(default=500, ge=1, description="Records a history request returns by default.")
    history_max_limit: int = Field(default=10_000, ge=1, description="Most records one history request may ask for.")
    hbase_retry_s: float = Field(
        default=5.0, ge=0, description="How long a request waits for HBase before answering 503."
    )
    token: SecretStr | None = Field(
        default=None,
        description="The token the API and the page ask for in secured mode (TICKFLOW_SECURED); by default the "
        "one generated at first need into <state>/serving/token.",
    )

    @field_validator("token")
    @classmethod
    def _long_enough(cls, token: SecretStr | None) -> SecretStr | None:
        if token is not None and not TOKEN.fullmatch(token.get_secret_value()):
            raise ValueError(
                "a token is at least 16 letters, digits, '-', '_', '.' or '~'; unset it for a generated one"
            )
        return token

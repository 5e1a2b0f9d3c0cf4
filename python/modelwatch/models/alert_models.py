"""The seed's ``monitoring.models.alert_models``."""

from .._enums import AlertSeverity, AlertStatus
from .._wire import Alert, AlertSummary, Rule
from ..services import AlertConfig

__all__ = ["Alert", "AlertConfig", "AlertSeverity", "AlertStatus", "AlertSummary", "Rule"]

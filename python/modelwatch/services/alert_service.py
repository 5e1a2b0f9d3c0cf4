"""The seed's ``monitoring.services.alert_service``."""

from . import AlertService

__all__ = ["AlertService"]

"""The seed's ``monitoring.services.degradation_detector``."""

from . import DegradationDetector

__all__ = ["DegradationDetector"]

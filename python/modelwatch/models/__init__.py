"""The seed's ``monitoring.models`` paths (``metrics_models``, ``alert_models``)."""

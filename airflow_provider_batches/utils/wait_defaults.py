"""Default wait settings, shared by the sensor, the operator and the triggers.

A module of its own so the sensor (imported at every DAG parse) gets them without loading the
trigger or ``airflow.triggers.base``.
"""

from __future__ import annotations

#: Seconds between polls (the sensor's ``poke_interval``, the trigger's longest gap).
DEFAULT_POLL_INTERVAL = 60.0
#: Seconds past ``expires_at`` before a batch that still has not ended times the wait out.
DEFAULT_EXPIRY_GRACE = 3600.0
#: Transient failures in a row tolerated before the wait fails.
DEFAULT_MAX_CONSECUTIVE_ERRORS = 10
#: Seconds a streak of transient failures may last before the wait fails.
DEFAULT_ERROR_TOLERANCE = 1800.0
#: Seconds between progress lines while nothing changes.
DEFAULT_LOG_INTERVAL = 600.0
#: Extra time Airflow's own deferral timeout allows past the trigger's deadline, so the
#: trigger's ``timeout`` event (which carries the last batch seen) normally arrives first.
DEFERRAL_TIMEOUT_MARGIN = 60.0

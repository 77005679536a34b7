"""Suite-wide isolation: no test writes into the user's project folder or reaches a network."""

import os
import tempfile

# set before Prefect or the package read them; every test process gets its own scratch home
_SCRATCH = tempfile.mkdtemp(prefix="crysreas-tests-")
os.environ.setdefault("CRYSREAS_HOME", os.path.join(_SCRATCH, "home"))
os.environ["PREFECT_HOME"] = os.path.join(_SCRATCH, "prefect")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
os.environ.pop("CRYSREAS_STORE", None)

"""The stage cache lives with the project's store: two checkouts never share cached stage results."""

import os
import subprocess
import sys


def test_prefect_results_are_stored_under_crysreas_home(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_RESULTS")}
    env["CRYSREAS_HOME"] = str(tmp_path / "home")
    code = ("import flows\nfrom prefect.settings import get_current_settings\n"
            "print(get_current_settings().results.local_storage_path)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(tmp_path / "home" / "prefect-results")

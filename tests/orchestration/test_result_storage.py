"""The stage cache lives with the project's store: two checkouts never share cached stage results."""

import os
import subprocess
import sys


def test_prefect_results_are_stored_under_crysreas_home(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_RESULTS", "CRYSREAS_RESULTS"))}
    env["CRYSREAS_HOME"] = str(tmp_path / "home")
    code = ("import flows\nfrom prefect.settings import get_current_settings\n"
            "print(get_current_settings().results.local_storage_path)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(tmp_path / "home" / "prefect-results")
    # a worker started from such a process, with its own CRYSREAS_HOME, gets its own results
    child = {**env, "PREFECT_RESULTS_LOCAL_STORAGE_PATH": out.stdout.strip(), "CRYSREAS_RESULTS_FROM_HOME": "1",
             "CRYSREAS_HOME": str(tmp_path / "worker")}
    out = subprocess.run([sys.executable, "-c", code], env=child, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(tmp_path / "worker" / "prefect-results")
    mine = {**env, "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(tmp_path / "mine")}  # the user's own choice
    out = subprocess.run([sys.executable, "-c", code], env=mine, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(tmp_path / "mine")

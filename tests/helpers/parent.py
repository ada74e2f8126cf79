"""A stand-in for an app: starts the gateway with --parent-pid <own pid>, then waits.

The gateway inherits this process's stdout, so whoever reads this process's stdout reads
the gateway's control lines. The test then kills this process with SIGKILL.
"""

import os
import subprocess
import sys
import time

from tests.gateway import gateway_command

log_dir = sys.argv[1]
extra = sys.argv[2:]
child = subprocess.Popen(
    gateway_command() + ["--port", "0", "--log-dir", log_dir, "--parent-pid", str(os.getpid())] + extra,
    stdin=subprocess.PIPE,
    stderr=subprocess.DEVNULL,
)
time.sleep(3600)

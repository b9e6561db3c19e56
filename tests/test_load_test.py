"""scripts/load_test.py itself: a few seconds of its hostile mixed load against the tiny model's server find
every answer right (it exits 1 on any wrong answer or status, a busy slot, a server traceback or RSS growth)."""
import subprocess
import sys


def test_stress_passes_briefly(tiny_gguf):
    done = subprocess.run([sys.executable, "scripts/load_test.py", "stress", "-m", tiny_gguf, "-c", "256",
                           "--clients", "6", "--duration", "3", "-t", "1"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "0 wrong answers or statuses" in done.stdout
    served = int(done.stdout.split(" requests in ")[0].split()[-1])
    assert served >= 20, done.stdout

"""A serve replica whose decode steps take 50 ms, so that tests/test_ray_serve.py can kill it mid-answer. A module
of its own: Ray's workers import it by name (the test cluster puts this checkout on their path)."""
import time

from tritlm.cluster.serve import Replica

STEP_SECONDS = 0.05


class SlowReplica(Replica):
    async def __init__(self, *args):
        await super().__init__(*args)
        decode = self.model.decode

        def slow_decode(seqs, tokens):
            time.sleep(STEP_SECONDS)
            return decode(seqs, tokens)

        self.model.decode = slow_decode

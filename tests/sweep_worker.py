"""A sweep in a subprocess, for tests/test_sweep_multihost.py (XLA_FLAGS and jax.distributed
only take effect before JAX's backend starts, so these cannot run inside pytest's process).

    python tests/sweep_worker.py devices OUT SPEC          # the sweep on 4 host devices
    python tests/sweep_worker.py host OUT SPEC PORT ID     # one of two processes of a multi-host sweep

SPEC is the sweep as JSON text; each sweep has 1 member per device per chunk. Writes
OUT/devices.json or OUT/host<ID>.json with the rows.
"""

from __future__ import annotations

import json
import os
import sys

MODE, OUT = sys.argv[1], sys.argv[2]
os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={4 if MODE == 'devices' else 1}"

import jax  # noqa: E402

from jaxmarl_lab.sweeps import run as sweep  # noqa: E402

SPEC = sweep.SweepSpec.from_dict(json.loads(sys.argv[3]))


def rows_of(out_dir: str) -> list:
    return sweep.run_sweep(SPEC, out_dir, chunk_size=1, progress=False).rows


if MODE == "devices":
    assert len(jax.devices()) == 4, jax.devices()
    with open(os.path.join(OUT, "devices.json"), "w") as f:
        json.dump({"rows": rows_of(os.path.join(OUT, "sharded"))}, f)
else:
    port, process_id = sys.argv[4], int(sys.argv[5])
    sweep.init_distributed(f"127.0.0.1:{port}", 2, process_id, timeout=60)
    assert jax.process_count() == 2 and len(jax.devices()) == 2, jax.devices()
    rows = rows_of(os.path.join(OUT, f"process{process_id}"))
    with open(os.path.join(OUT, f"host{process_id}.json"), "w") as f:
        json.dump({"rows": rows, "devices": len(jax.devices()), "local": len(jax.local_devices())}, f)

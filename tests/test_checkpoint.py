"""Checkpoints of sharded states: saved from arrays whose seed axis is split over devices and restored
onto a template's shardings (4 host CPU devices, in a subprocess: XLA_FLAGS only acts before JAX starts)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = textwrap.dedent("""
    import sys
    import jax
    import numpy as np
    from jax.sharding import NamedSharding, PartitionSpec
    from jaxmarl_lab.runs import training
    from jaxmarl_lab.runs.checkpoint import config_hash, load_checkpoint, save_checkpoint
    from jaxmarl_lab.runs.config import RunConfig

    assert len(jax.devices()) == 4, jax.devices()
    run = RunConfig(env="grid-world", env_kwargs={"layout": "lesson"}, learner="iql", num_seeds=4,
                    runner={"num_envs": 4, "rollout_len": 5, "buffer_capacity": 64, "batch_size": 8,
                            "total_env_steps": 80})
    t = training.make_training(run)
    state, _ = t.chunk(t.init(), 2)  # unsharded: every leaf on device 0
    mesh = jax.make_mesh((4,), ("seed",))
    by_seed = NamedSharding(mesh, PartitionSpec("seed"))  # the seed axis (S = 4) split over 4 devices
    sharded = jax.device_put(state, by_seed)
    assert all(len(x.sharding.device_set) == 4 for x in jax.tree.leaves(sharded))
    meta = {"run": run.to_dict(), "config_hash": config_hash(run.to_dict()), "num_iterations": 4,
            "chunk_updates": 2, "iteration": 2}
    plain = jax.eval_shape(t.init)
    on_devices = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=by_seed), plain)
    expected = [np.asarray(x) for x in jax.tree.leaves(state)]
    out = sys.argv[1]
    save_checkpoint(out + "/sharded", sharded, meta)
    save_checkpoint(out + "/plain", state, meta)
    for source in ("sharded", "plain"):
        for template, devices in ((on_devices, 4), (plain, 1)):
            restored, got_meta = load_checkpoint(out + "/" + source, template, meta["config_hash"])
            assert got_meta["iteration"] == 2
            assert jax.tree.structure(restored) == jax.tree.structure(state)
            leaves = jax.tree.leaves(restored)
            assert all(len(x.sharding.device_set) == devices for x in leaves), (source, devices)
            if devices == 4:
                assert all(x.sharding.is_equivalent_to(by_seed, x.ndim) for x in leaves)
                assert all(len(x.addressable_shards) == 4 and x.addressable_shards[0].data.shape[0] == 1
                           for x in leaves)
            assert all(np.array_equal(np.asarray(a), b) for a, b in zip(leaves, expected)), (source, devices)
    print("restored", len(expected), "leaves on", len(jax.devices()), "devices")
""")


@pytest.mark.slow
def test_sharded_state_saves_and_restores_onto_the_templates_shardings(tmp_path):
    """A 4-seed state split over 4 devices equals, after save and restore, the unsharded state; it
    restores onto the template's NamedSharding (each device holding its seed) or, with a plain
    template, onto one device; an unsharded checkpoint restores sharded too."""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "on 4 devices" in proc.stdout


def test_a_step_deleted_while_it_is_read_is_read_again_at_the_newer_step(tmp_path, monkeypatch):
    """`eval` while `train` runs: the training process commits step 5 and deletes step 4 between the
    reader finding step 4 and reading it; the reader then reads step 5 instead of calling it corrupt."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxmarl_lab.runs import checkpoint

    path = str(tmp_path / "checkpoint")
    writer = checkpoint.CheckpointWriter(path)
    writer.save({"w": jnp.arange(6.0)}, {"config_hash": "h", "iteration": 4})
    writer.wait()
    read_step_meta = checkpoint._read_step_meta

    def newer_step_committed_meanwhile(folder, step):
        if step == 4:
            writer.save({"w": jnp.arange(6.0) + 5}, {"config_hash": "h", "iteration": 5})
            writer.wait()  # orbax has renamed step 5 into place and deleted step 4
        return read_step_meta(folder, step)
    monkeypatch.setattr(checkpoint, "_read_step_meta", newer_step_committed_meanwhile)
    state, meta = checkpoint.load_checkpoint(path, jax.eval_shape(lambda: {"w": jnp.zeros(6)}), "h")
    writer.close()
    assert meta["iteration"] == 5 and np.array_equal(state["w"], np.arange(6.0) + 5)
    assert os.listdir(path) == ["5"]

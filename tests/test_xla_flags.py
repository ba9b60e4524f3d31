"""The XLA flag jaxmarl_lab sets at import, and the program it keeps from hanging."""

import os
import subprocess
import sys
import textwrap

import pytest

from jaxmarl_lab.xla_flags import CPU_SCHEDULER_FLAG, add_xla_flag


def test_add_xla_flag_appends_once_and_never_overrides(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
    assert add_xla_flag("--xla_foo=1")
    assert os.environ["XLA_FLAGS"] == "--xla_force_host_platform_device_count=4 --xla_foo=1"
    assert not add_xla_flag("--xla_foo=0")  # the user's (or an earlier) value stays
    assert not add_xla_flag("--xla_force_host_platform_device_count=2")
    assert os.environ["XLA_FLAGS"] == "--xla_force_host_platform_device_count=4 --xla_foo=1"
    monkeypatch.delenv("XLA_FLAGS")
    assert add_xla_flag("--xla_foo=1") and os.environ["XLA_FLAGS"] == "--xla_foo=1"
    with pytest.raises(ValueError, match="--name=value"):
        add_xla_flag("xla_foo")


# With jaxlib 0.10's default CPU scheduler this program never returns (every XLA worker idle
# after a few iterations); `import jaxmarl_lab` adds CPU_SCHEDULER_FLAG, so it must finish.
PROGRAM = textwrap.dedent("""
    import os
    import jax
    from jaxmarl_lab import envs
    from jaxmarl_lab.learners.value_based import ValueConfig, ValueHParams, make_vdn
    from jaxmarl_lab.runner import RunnerConfig, make_train
    assert "{flag}" in os.environ["XLA_FLAGS"].split()
    env = envs.make("grid-world", num_agents=3, height=5, width=5, layout="random")
    learner = make_vdn(env.spec, ValueConfig(hidden_dim=64, recurrent=True))
    runner = RunnerConfig(num_envs=16, rollout_len=10, total_env_steps=8000, buffer_capacity=64,
                          batch_size=2, updates_per_rollout=1)
    train = jax.jit(jax.vmap(make_train(env, learner, runner), in_axes=(0, None)))
    _, metrics = train(jax.random.split(jax.random.PRNGKey(0), 2), ValueHParams())
    print("iterations", metrics["loss"].shape[1])
""").format(flag=CPU_SCHEDULER_FLAG)


@pytest.mark.slow
def test_vmapped_gru_training_on_random_grid_world_finishes():
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    try:
        out = subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True,
                             timeout=300)
    except subprocess.TimeoutExpired:
        pytest.fail("vmapped GRU VDN training on random grid-world hung (XLA CPU scheduler)")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "iterations 50" in out.stdout

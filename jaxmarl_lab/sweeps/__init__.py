"""Hyperparameter sweeps as one program: the search space (`sweeps.space`), the sharded, chunked
run over devices and hosts (`sweeps.run`) and its ranking and files (`sweeps.report`)."""

"""Research that uses the jaxmarl-lab engine, one sub-package per study, each with its README and results.

Run from a checkout's root (the folder holding `jaxmarl_lab/` and `studies/`), e.g.
`python -m studies.critic_variance --part 1`. The installed `jaxmarl_lab` package never imports `studies`.
"""

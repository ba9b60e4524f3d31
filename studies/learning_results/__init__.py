"""Learning results of the engine's learners: IQL, VDN, QMIX (`value_based`) and MAPPO, IPPO, MADDPG
(`actor_critic`), each trained as one vmapped program over seeds and scored against exact optima and
baseline policies. Results and findings are in README.md; run e.g.
`python -m studies.learning_results.value_based --task lesson` from a checkout's root.
"""

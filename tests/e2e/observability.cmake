# Full-chain observability (issue 7): promtool on the server's and a separate agent's /metrics, event
# streams with kubectl 1.27 and 1.33, the BackOff aggregation and the creation timeline.
kc_e2e_py(observability test_observability.py)

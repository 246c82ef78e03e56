# Node agent with real containers (runc + CNI) against a real registry (root only; skips otherwise).
kc_e2e_py(runc test_runc.py)
set_tests_properties(e2e.runc PROPERTIES TIMEOUT 300)
# The same through `kubec server --agent` (in-process agent): Deployment, rolling update, logs.
kc_e2e_py(runc_server_agent test_runc_server_agent.py)
set_tests_properties(e2e.runc_server_agent PROPERTIES TIMEOUT 300)

# Node agent with real containers (runc + CNI) against a real registry (root only; skips otherwise).
kc_e2e_py(runc test_runc.py)
set_tests_properties(e2e.runc PROPERTIES TIMEOUT 300)

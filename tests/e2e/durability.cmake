# Durability and protocol suites (crash safety, watch semantics, server lifecycle); included by
# tests/e2e/CMakeLists.txt.
kc_e2e_py(crash test_crash.py)
kc_e2e_py(watch test_watch.py)
kc_e2e_py(lifecycle test_lifecycle.py ENV "KUBECTL_VERSION=1.33")

# Scheduler scenarios with kubectl against `kubec server --sim-nodes N` (included by tests/e2e/CMakeLists.txt).
kc_e2e_py(scheduler test_scheduler.py ENV "KUBECTL_VERSION=1.33")

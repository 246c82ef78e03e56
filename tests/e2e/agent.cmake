# Node agent with simulated nodes (included by tests/e2e/CMakeLists.txt).
kc_e2e_py(sim test_sim.py ENV "KUBECTL_VERSION=1.33")

# Deployment controller e2e suite (included by tests/e2e/CMakeLists.txt).
kc_e2e_py(deployment test_deployment.py ENV "KUBECTL_VERSION=1.33")

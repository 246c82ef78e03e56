# ReplicaSet controller and garbage collector e2e suite (included by tests/e2e/CMakeLists.txt).
kc_e2e_py(replicaset test_replicaset.py ENV "KUBECTL_VERSION=1.33")

# Client-library and bad-input e2e suites (included by tests/e2e/CMakeLists.txt).
kc_e2e_py(python-client test_python_client.py)
kc_e2e_py(js-client js/run_node_test.py)
kc_e2e_py(badinput test_badinput.py)

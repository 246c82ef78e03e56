# `kubec timeline` e2e suite (included by tests/e2e/CMakeLists.txt); needs `kubec server --sim-nodes`.
kc_e2e_py(timeline test_timeline.py)

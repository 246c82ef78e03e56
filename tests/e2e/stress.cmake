# `kubec stress` on sim nodes, report.html checked in headless Chromium (included by tests/e2e/CMakeLists.txt).
kc_e2e_py(stress test_stress.py ENV "KUBEC_ARTIFACT_DIR=${CMAKE_CURRENT_BINARY_DIR}/stress-artifacts")

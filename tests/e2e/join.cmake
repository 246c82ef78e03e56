# Joining a node agent with the server's join token (K10<CA hash>::<credential>), sim nodes.
kc_e2e_py(join test_join.py)
set_tests_properties(e2e.join PROPERTIES TIMEOUT 120)

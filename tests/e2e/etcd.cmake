# etcd as the store (issue 6): several kubec servers on a 3-member etcd cluster with leader election,
# a watch across an etcd compaction with the Python client, and `kubec datastore migrate`.
# Each suite starts its own etcd members (/usr/bin/etcd from Debian etcd-server) on free loopback ports.
kc_e2e_py(etcd.ha test_etcd_ha.py ENV "KUBECTL_VERSION=1.33")
kc_e2e_py(etcd.compaction test_etcd_compaction.py)
kc_e2e_py(etcd.migrate test_etcd_migrate.py ENV "KUBECTL_VERSION=1.33")

"""run_node_test.py — start a kubec server, run the @kubernetes/client-node test against it, stop the server.

The node script gets KUBECONFIG pointing at the server's kubeconfig and must exit 0; the server must then
stop cleanly on SIGTERM (exit 0). Skips when node or the client-node package is not installed.
"""
import os
import shutil
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import harness  # noqa: E402


class NodeClientTest(harness.ServerTestCase):
    def test_client_node(self):
        node = shutil.which("node") or shutil.which("nodejs")
        if not node:
            self.skipTest("node is not installed")
        if not os.path.isdir(os.path.join(HERE, "node_modules", "@kubernetes", "client-node")):
            self.skipTest("@kubernetes/client-node is not installed (run scripts/deps.sh)")
        env = dict(os.environ, KUBECONFIG=self.server.kubeconfig)
        rc, out, err = harness.run([node, os.path.join(HERE, "test_client_node.js")], env=env, timeout=120)
        self.assertEqual(rc, 0, "node test failed (exit %s)\nstdout:\n%s\nstderr:\n%s\nserver log tail:\n%s"
                         % (rc, out, err, self.server.read_log()[-3000:]))
        self.assertIn("PASS", out)


if __name__ == "__main__":
    unittest.main(verbosity=2)

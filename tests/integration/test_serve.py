#!/usr/bin/python3
"""Serving: READY=1 only once the app is ready, stop, app death, ready timeout, single-instance lock."""
import json
import os
import signal
import socket
import subprocess
import time
import unittest

from bartltest import EXIT_RUNTIME, StackTest, edit_config, scaled


def exec_with(s, *extra):
    """The example app's argv with extra arguments (e.g. --ready-delay)."""
    engine = os.path.join(os.environ["BARTL_SOURCE_ROOT"], "examples", "notes", "engine", s.version, "notes.py")
    argv = ["/usr/bin/python3", engine, "--db", os.path.join(s.state, "notes.db"), "--port", str(s.port), *extra]
    return json.dumps(argv)


def port_open(port):
    with socket.socket() as c:
        c.settimeout(0.5)
        return c.connect_ex(("127.0.0.1", port)) == 0


class Serve(StackTest):
    def test_ready_only_after_slow_app_is_ready(self):
        s = self.stack("1.0.0")
        s.run("--prepare")
        edit_config(s.config, {"app.exec": exec_with(s, "--ready-delay", "1.5")})
        t0 = time.monotonic()
        s.start()
        s.wait_ready()
        ready = s.notify.first_time("READY=1")
        self.assertGreaterEqual(ready - t0, 1.5, "READY=1 came before the app was ready")
        # At READY the app answers at once.
        self.assertEqual(s.get("/health")[0], 200)
        statuses = s.notify.statuses()
        self.assertTrue(any(x.startswith("Starting notes") for x in statuses), statuses)
        self.assertEqual(statuses[-1], "Serving notes 1.0.0 (state 1.0.0)")

    def test_ready_tcp_and_started(self):
        for ready, delay in (('"tcp://127.0.0.1:{port}"', "1.0"), ('"started"', "0")):
            with self.subTest(ready=ready):
                s = self.stack("1.0.0")
                s.run("--prepare")
                edit_config(s.config, {"app.exec": exec_with(s, "--ready-delay", delay),
                                       "app.ready": ready.format(port=s.port)})
                t0 = time.monotonic()
                s.start()
                s.wait_ready()
                if ready.startswith('"tcp'):
                    self.assertGreaterEqual(s.notify.first_time("READY=1") - t0, 1.0)
                    self.assertTrue(port_open(s.port))
                self.assertEqual(s.stop(), 0)

    def test_ready_http(self):
        s = self.stack("1.0.0")
        s.run("--prepare")
        edit_config(s.config, {"app.exec": exec_with(s, "--ready-delay", "0.8"),
                               "app.ready": f'"http://127.0.0.1:{s.port}/health"'})
        t0 = time.monotonic()
        s.start()
        s.wait_ready()
        self.assertGreaterEqual(s.notify.first_time("READY=1") - t0, 0.8)

    def test_ready_command_waits_until_the_probe_exits_0(self):
        s = self.stack("1.0.0")
        s.run("--prepare")
        probe = ["/usr/bin/python3", "-c",
                 f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{s.port}/health', timeout=1)"]
        edit_config(s.config, {"app.exec": exec_with(s, "--ready-delay", "1.0"), "app.ready": '"command"',
                               "app.ready_command": json.dumps(probe), "app.ready_interval": '"100ms"'})
        t0 = time.monotonic()
        s.start()
        s.wait_ready()
        self.assertGreaterEqual(s.notify.first_time("READY=1") - t0, 1.0)
        self.assertEqual(s.get("/health")[0], 200)
        self.assertEqual(s.stop(), 0)

    def test_ready_command_that_never_succeeds_names_its_last_answer(self):
        s = self.stack("1.0.0")
        s.run("--prepare")
        edit_config(s.config, {"app.exec": exec_with(s), "app.ready": '"command"',
                               "app.ready_command": '["/bin/sh", "-c", "echo LOADING Redis is loading; exit 1"]',
                               "app.ready_timeout": '"1s"'})
        s.start()
        self.assertEqual(s.proc.wait(scaled(30)), EXIT_RUNTIME)
        self.assertIsNone(s.notify.first_time("READY=1"))
        self.assertIn("app notes.py not ready after 1s (ready = command /bin/sh; last attempt: /bin/sh exited with status 1: "
                      "LOADING Redis is loading)", s.read_log())

    def test_tcp_ready_refuses_a_port_another_process_holds(self):
        # Issue 10: a leftover process on the port must not make the new app look ready.
        s = self.stack("1.0.0")
        s.run("--prepare")
        edit_config(s.config, {"app.exec": exec_with(s), "app.ready": f'"tcp://127.0.0.1:{s.port}"',
                               "app.ready_timeout": '"30s"'})
        with socket.socket() as squatter:
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            squatter.bind(("127.0.0.1", s.port))
            squatter.listen()
            t0 = time.monotonic()
            s.start()
            self.assertEqual(s.proc.wait(scaled(30)), EXIT_RUNTIME)
            self.assertLess(time.monotonic() - t0, 10, "waited out the ready timeout")
        self.assertIsNone(s.notify.first_time("READY=1"))
        with open(f"/proc/{os.getpid()}/comm") as f:
            comm = f.read().strip()
        self.assertIn(f"port {s.port} is held by PID {os.getpid()} ({comm}), which is not part of the app", s.read_log())

    def test_tcp_ready_counts_a_listener_the_app_forked(self):
        s = self.stack("1.0.0")
        s.run("--prepare")
        # The process bartld starts is a shell; the listener is its child.
        argv = json.loads(exec_with(s, "--ready-delay", "0.5"))
        edit_config(s.config, {"app.exec": json.dumps(["/bin/sh", "-c", '"$@" & wait', "sh", *argv]),
                               "app.ready": f'"tcp://localhost:{s.port}"'})
        t0 = time.monotonic()
        s.start()
        s.wait_ready()
        self.assertGreaterEqual(s.notify.first_time("READY=1") - t0, 0.5)
        self.assertTrue(port_open(s.port))
        self.assertEqual(s.stop(), 0)

    def test_sigterm_stops_app_and_exits_0(self):
        s = self.stack("1.0.0")
        s.start()
        s.wait_ready()
        self.assertTrue(port_open(s.port))
        self.assertEqual(s.stop(), 0)
        self.assertFalse(port_open(s.port), "the app still listens after bartld stopped")

    def test_app_dying_exits_1_with_its_status(self):
        s = self.stack("1.0.0")
        s.start()
        s.wait_ready()
        pid = int(subprocess.check_output(["pgrep", "-f", f"notes.py .*--port {s.port}"]).split()[0])
        os.kill(pid, signal.SIGKILL)
        self.assertEqual(s.proc.wait(scaled(30)), EXIT_RUNTIME)
        # Named by its script, not by its interpreter (/usr/bin/python3).
        self.assertRegex(s.read_log(), rf"app notes\.py \(PID {pid}\) killed by signal 9 \(SIGKILL\) while serving")

    def test_ready_timeout_stops_child_and_exits_1(self):
        s = self.stack("1.0.0")
        s.run("--prepare")
        edit_config(s.config, {"app.exec": exec_with(s, "--ready-delay", "30"), "app.ready_timeout": '"1s"'})
        s.start()
        self.assertEqual(s.proc.wait(scaled(30)), EXIT_RUNTIME)
        self.assertIsNone(s.notify.first_time("READY=1"))
        self.assertIn("not ready after 1s", s.read_log())
        time.sleep(0.2)
        self.assertEqual(subprocess.run(["pgrep", "-f", f"notes.py .*--port {s.port}"]).returncode, 1, "app left running")

    def test_second_bartld_for_same_instance_exits_1_naming_holder(self):
        s = self.stack("1.0.0")
        s.start()
        s.wait_ready()
        r = s.run("--prepare")
        self.assertEqual(r.returncode, EXIT_RUNTIME)
        self.assertIn(f"locked by PID {s.proc.pid}", r.stderr)
        # A killed holder does not block the next start.
        s.proc.kill()
        s.proc.wait()
        # The orphaned app inherited the lock; it is the last holder, and it is named.
        r = s.run("--prepare")
        self.assertIn(f"started by bartld PID {s.proc.pid}", r.stderr)
        self.assertRegex(r.stderr, r"locked by PID \d+ \(python3\)")
        subprocess.run(["pkill", "-KILL", "-f", f"notes.py .*--port {s.port}"])
        deadline = time.monotonic() + 10
        while subprocess.run(["pgrep", "-f", f"notes.py .*--port {s.port}"], capture_output=True).returncode == 0:
            self.assertLess(time.monotonic(), deadline, "app did not die")
            time.sleep(0.05)
        r = s.run("--prepare")
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_state_only_instance_stays_up_until_sigterm(self):
        s = self.stack("1.0.0")
        edit_config(s.config, {"app.exec": None, "app.ready": None})
        s.start()
        s.wait_ready()
        time.sleep(0.3)
        self.assertIsNone(s.proc.poll())
        self.assertEqual(s.stop(), 0)

    def test_watchdog_pings_when_asked(self):
        s = self.stack("1.0.0")
        s.start(extra_env={"WATCHDOG_USEC": "400000"})
        # sd_watchdog_enabled() checks WATCHDOG_PID when set; unset means "for us".
        s.wait_ready()
        time.sleep(1.0)
        self.assertGreaterEqual(sum(1 for m in s.notify.texts() if "WATCHDOG=1" in m.split("\n")), 2)


if __name__ == "__main__":
    unittest.main(verbosity=2)

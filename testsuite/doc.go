// Package testsuite is the harness for tests that run whole nodes: it starts
// standalone nodes in-process on free loopback ports with their data in a
// test's temporary directory, and holds the conformance tests that drive
// them with real MQTT clients (paho.golang for v5, paho.mqtt.golang for
// 3.1.1, and Debian's mosquitto clients). Multi-node and fault tests join it
// as clustering lands.
//
// Every listener a test opens is on 127.0.0.1 with port 0. A test that
// needs an external tool (mosquitto_pub) skips with a message when the tool
// is missing on a developer's machine, and fails under CI (CI set), so a
// missing install step cannot hide.
package testsuite

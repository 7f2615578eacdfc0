package testsuite

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	paho "github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"
	packets3 "github.com/eclipse/paho.mqtt.golang/packets"
	"golang.org/x/crypto/bcrypt"

	"github.com/bifromq-go/bifromq/mqtt"
)

// TestAuthUsersFile runs a broker configured with the file provider (as
// the README shows): a wrong password is refused with 0x86 (v5) and
// return code 4 (v3); the ACL denies what the file says, with the
// configured codes; two tenants share topic names without seeing each
// other's messages.
func TestAuthUsersFile(t *testing.T) {
	h, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	dir := t.TempDir()
	users := filepath.Join(dir, "users.yaml")
	os.WriteFile(users, []byte(`users:
  - username: alice
    passwordHash: "`+string(h)+`"
    tenant: acme
    acl:
      - {allow: true, actions: [publish, subscribe], topics: ["devices/%u/#", "shared/#"]}
  - username: bob
    passwordHash: "`+string(h)+`"
    tenant: globex
    acl:
      - {allow: true, topics: ["#"]}
`), 0o600)
	cfg := NodeConfig(t)
	cfg.Auth.Provider, cfg.Auth.UsersFile = "file", users
	cfg.Auth.DenySubscribeCode = "unspecified"
	n := StartNode(t, cfg)

	connect := func(user, pw string) (*paho.Client, *paho.Connack, chan *paho.Publish, error) {
		nc, err := net.Dial("tcp", n.MQTTAddr(mqtt.TCP).String())
		if err != nil {
			t.Fatal(err)
		}
		msgs := make(chan *paho.Publish, 100)
		c := paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(nc), OnClientError: func(error) {},
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
				msgs <- pr.Packet
				return true, nil
			}}})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ack, err := c.Connect(ctx, &paho.Connect{ClientID: user + "-c", CleanStart: true, KeepAlive: 30,
			UsernameFlag: true, Username: user, PasswordFlag: true, Password: []byte(pw)})
		if err == nil {
			t.Cleanup(func() { c.Disconnect(&paho.Disconnect{}); <-c.Done() })
		}
		return c, ack, msgs, err
	}
	if _, ack, _, err := connect("alice", "nope"); err == nil || ack == nil || ack.ReasonCode != 0x86 {
		t.Fatalf("wrong password: %v %+v", err, ack)
	}
	// v3: return code 4.
	o := mqtt3.NewClientOptions().AddBroker("tcp://" + n.MQTTAddr(mqtt.TCP).String()).SetClientID("v3").
		SetProtocolVersion(4).SetUsername("alice").SetPassword("nope").SetAutoReconnect(false).SetConnectRetry(false)
	c3 := mqtt3.NewClient(o)
	if tok := c3.Connect(); !tok.WaitTimeout(5*time.Second) || !errors.Is(tok.Error(), packets3.ErrorRefusedBadUsernameOrPassword) {
		t.Fatalf("v3 wrong password: %v", tok.Error())
	}
	alice, _, aliceMsgs, err := connect("alice", "pw")
	if err != nil {
		t.Fatal(err)
	}
	bob, _, bobMsgs, err := connect("bob", "pw")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sa, _ := alice.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "shared/#", QoS: 1}, {Topic: "other/#", QoS: 1}}})
	if sa == nil || sa.Reasons[0] != 1 || sa.Reasons[1] != 0x80 {
		t.Fatalf("alice's SUBACK %+v", sa)
	}
	if _, err := bob.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "shared/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	if r, _ := alice.Publish(ctx, &paho.Publish{Topic: "other/x", QoS: 1, Payload: []byte("x")}); r == nil || r.ReasonCode != 0x87 {
		t.Fatalf("alice's denied publish: %+v", r)
	}
	bob.Publish(ctx, &paho.Publish{Topic: "shared/t", QoS: 1, Payload: []byte("globex")})
	alice.Publish(ctx, &paho.Publish{Topic: "shared/t", QoS: 1, Payload: []byte("acme")})
	for who, ch := range map[string]chan *paho.Publish{"acme": aliceMsgs, "globex": bobMsgs} {
		select {
		case m := <-ch:
			if string(m.Payload) != who {
				t.Fatalf("tenant %s got %q", who, m.Payload)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("tenant %s got nothing", who)
		}
		select {
		case m := <-ch:
			t.Fatalf("tenant %s also got %q", who, m.Payload)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

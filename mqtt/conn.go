package mqtt

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bifromq-go/bifromq/internal/rawconn"
	"github.com/bifromq-go/bifromq/mqtt/auth"
	"github.com/bifromq-go/bifromq/mqtt/internal/transport"
	"github.com/bifromq-go/bifromq/mqtt/packet"
	"github.com/bifromq-go/bifromq/mqtt/settings"
)

// conn is one client connection. Its serve goroutine owns every field but
// those under wmu (the write side, shared with shutdown) and the atomics.
type conn struct {
	s      *Server
	seq    uint64 // this connection's number on the server
	nc     net.Conn
	kind   ListenerKind
	over   bool // accepted over MaxConnections: answer CONNECT with a refusal
	rd     *packet.Reader
	remote string

	// Set at CONNECT, read-only afterwards (also read by Deliver).
	version      packet.Version
	clientID     string
	tenant       string
	user         string
	perms        auth.Checker
	set          *settings.Settings // the tenant's settings, as of CONNECT
	keepAlive    time.Duration      // read deadline after CONNACK: 1.5x keep alive; 0 none
	readDeadline time.Time          // the read deadline in force (see loop)
	// Negotiated v5 limits.
	clientMaxPacket uint32 // client's Maximum Packet Size; 0 no limit
	clientAliasMax  uint16 // client's Topic Alias Maximum: outbound aliases
	problemInfo     bool   // client accepts reason strings and user properties
	sessionExpiry   uint32 // as CONNECT asked (v5)
	expiry          uint32 // the session expiry in force; a persistent session only
	// Inbound state.
	qos2In  map[uint16]*qos2State // QoS 2 packet ids awaiting PUBREL
	inq     chan struct{}         // Receive Maximum slots: QoS 1 awaiting dist, QoS 2 awaiting PUBREL
	aliases map[uint16]string     // inbound topic aliases
	pub     packet.Publish        // reused for every inbound PUBLISH
	sess    session
	will    *will
	pubRate *rate         // MsgPubPerSec; nil unlimited
	inBW    *rate         // InBoundBandWidth (bytes); nil unlimited
	out     outbox        // outbound messages and acknowledgements
	p       *persist      // the persistent session; nil for a transient one
	done    chan struct{} // closed when the connection has ended

	connected  atomic.Bool // CONNACK success sent; version is set
	stopping   atomic.Bool // the server is shutting this connection down
	kicked     atomic.Bool // taken over by a newer connection with the same client id
	registered bool        // in the server's session registry

	wmu  sync.Mutex
	wbuf []byte
	// raw is nc for a plain TCP connection (raw system calls, and
	// writes that never wait: tryWrite); nil for other connections.
	raw *rawconn.Conn

	// The reader's flush list: outboxes whose write turn this reader took
	// while handling its input, written before it next waits (flushOut).
	touched []*outbox
	rctx    readerCtx // the context of this reader's inline publishes
}

// readerCtx is the context a reader passes to Router.PubInline: Deliver,
// called on the reader's goroutine, finds the reader in it and leaves the
// writes to the reader's flush list.
type readerCtx struct {
	context.Context
	c *conn
}

// readerOf returns the reader a Deliver runs on, if any.
func readerOf(ctx context.Context) *conn {
	if rc, ok := ctx.(*readerCtx); ok {
		return rc.c
	}
	return nil
}

func newConn(s *Server, nc net.Conn, kind ListenerKind, over bool) *conn {
	c := &conn{s: s, seq: s.connSeq.Add(1), kind: kind, over: over, done: make(chan struct{})}
	c.rctx = readerCtx{context.Background(), c}
	if tc, ok := nc.(*net.TCPConn); ok {
		if rc, err := rawconn.New(tc); err == nil {
			nc, c.raw = rc, rc
		}
	}
	c.nc = nc
	c.rd = packet.NewReader(nc, s.opts.MaxPacketSize)
	return c
}

// flushOut writes the outboxes in the reader's flush list. The reader
// calls it before anything that may wait: a read with no whole packet
// buffered, a store call, a full lane, a wait for queue room.
//
// It yields first when the list holds the reader's own acknowledgements
// (a QoS 1/2 publish) or a fan-in outbox (fed by several readers at once):
// the readers already runnable handle their input before anyone writes,
// so a subscriber fed by many gets their messages in one write, and a
// burst's writes reach each peer together (waking it once, not once per
// message). A QoS 0 copy for a subscriber fed by this reader alone is
// written at once. The reader's own acknowledgements go last, after one
// more yield: the other readers' copies for subscribers go out first.
func (c *conn) flushOut() {
	if len(c.touched) == 0 {
		return
	}
	own, fanIn := false, false
	for _, o := range c.touched {
		own = own || o == &c.out
		fanIn = fanIn || o.fanIn.Load()
	}
	if own || fanIn {
		runtime.Gosched()
	}
	for _, o := range c.touched {
		if o != &c.out {
			o.flush()
		}
	}
	if own {
		runtime.Gosched()
		c.out.flush()
	}
	clear(c.touched)
	c.touched = c.touched[:0]
}

// release returns the connection's pooled buffers.
func (c *conn) release() {
	c.rd.Release()
	if c.over {
		c.s.rejecting.Add(-1)
	}
}

// closeReason says why a connection ended, for metrics and logs.
type closeReason string

func (c *conn) serve() {
	gauge := c.s.metrics.connections.WithLabelValues(string(c.kind))
	gauge.Inc()
	var reason closeReason
	defer func() {
		c.nc.Close()
		if c.out.c != nil {
			c.end(reason)
		}
		close(c.done)
		c.release()
		gauge.Dec()
		if !c.over && c.s.opts.MaxConnections > 0 {
			c.s.open.Add(-1)
		}
		if c.connected.Load() {
			c.s.metrics.disconnects.WithLabelValues(string(reason)).Inc()
			c.s.log.Debug("client disconnected", "client_id", c.clientID, "remote", c.remote, "reason", reason)
		}
		c.s.untrack(c)
	}()
	// The CONNECT exchange (handshakes, authentication, the session
	// store) runs deep call chains; it runs on a goroutine of its own so
	// that this long-lived one keeps the small stack its read loop needs
	// (an idle connection's memory is mostly its stack).
	connected := make(chan bool, 1)
	go func() { connected <- c.connect() }()
	if !<-connected {
		return
	}
	reason = c.loop()
	if c.kicked.Load() {
		reason = "session_taken_over"
	}
}

// end tears down a connected session after its connection closed: the
// outbound side stops, the subscriptions go, the will is published unless
// the client disconnected normally, and the session leaves the registry.
func (c *conn) end(reason closeReason) {
	c.out.close()
	if c.connected.Load() {
		if reason == "session_taken_over" {
			c.event(EventKicked, "", "")
		}
		c.event(EventDisconnected, string(reason), "")
	}
	abnormal := reason != "client_disconnect"
	if !c.connected.Load() {
		abnormal = false // CONNACK never went out: no session, no will (MQTT-3.1.2-8)
		c.will = nil
	}
	if c.p != nil {
		c.closeSession(abnormal)
	} else {
		c.endSession()
		if abnormal {
			c.publishWill()
		}
	}
	if c.registered {
		c.s.unregister(c)
	}
}

// connect runs the handshakes and the CONNECT exchange under the connect
// timeout. It returns true once a successful CONNACK is sent.
func (c *conn) connect() bool {
	s := c.s
	deadline := time.Now().Add(s.opts.ConnectTimeout)
	c.nc.SetDeadline(deadline)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	err := transport.Handshake(ctx, c.nc)
	cancel()
	if err != nil {
		s.metrics.rejected.WithLabelValues(rejectHandshake).Inc()
		s.log.Debug("handshake failed", "kind", c.kind, "err", err)
		return false
	}
	c.remote = c.nc.RemoteAddr().String()
	h, body, err := c.rd.ReadPacket()
	if err != nil {
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			s.metrics.rejected.WithLabelValues(rejectConnectTimeout).Inc()
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
			s.metrics.rejected.WithLabelValues(rejectBadConnect).Inc()
		default:
			s.metrics.decodeError(err)
			s.metrics.rejected.WithLabelValues(rejectBadConnect).Inc()
		}
		return false
	}
	s.metrics.bytesIn.Add(float64(h.Len() + len(body)))
	s.metrics.packetsIn[h.Type].Inc()
	if h.Type != packet.CONNECT {
		// MQTT-3.1.0-1: the first packet must be CONNECT; no CONNACK.
		s.metrics.rejected.WithLabelValues(rejectNotConnect).Inc()
		return false
	}
	var cp packet.Connect
	if err := cp.Unpack(h.Flags, body, 0); err != nil {
		s.metrics.decodeError(err)
		s.metrics.rejected.WithLabelValues(rejectBadConnect).Inc()
		s.log.Debug("bad CONNECT", "remote", c.remote, "err", err)
		code := packet.CodeOf(err)
		switch {
		case code == packet.UnsupportedProtocolVersion && (cp.ProtocolName == "MQTT" || cp.ProtocolName == "MQIsdp"):
			// MQTT-3.1.2-2: answer in the 3.1.1 form with return code 1.
			c.write(&packet.Connack{ReasonCode: packet.UnsupportedProtocolVersion}, packet.V311)
		case cp.Version == packet.V5 && cp.ProtocolName == "MQTT":
			if code != packet.MalformedPacket && code != packet.TopicNameInvalid {
				code = packet.ProtocolError
			}
			c.write(&packet.Connack{ReasonCode: code}, packet.V5)
		}
		return false
	}
	c.version = cp.Version
	if s.isStopping() {
		s.metrics.rejected.WithLabelValues(rejectShuttingDown).Inc()
		c.refuse(packet.ServerUnavailable, "server shutting down")
		return false
	}
	if c.over {
		s.metrics.rejected.WithLabelValues(rejectMaxConnections).Inc()
		c.refuse(packet.QuotaExceeded, "too many connections")
		return false
	}
	ack := packet.Connack{}
	if !c.negotiate(&cp, &ack) || !c.authenticate(&cp, &ack) || !c.applySettings(&cp, &ack) {
		return false
	}
	if cp.WillFlag {
		c.will = c.newWill(&cp.Will)
	}
	window := int(s.opts.MaxInflight)
	if c.version == packet.V5 {
		window = 65535 // Receive Maximum absent
		if cp.Properties.Has(packet.PropReceiveMaximum) {
			window = int(cp.Properties.ReceiveMaximum)
		}
	}
	c.out.init(c, window)
	c.inq = make(chan struct{}, c.set.ReceivingMaximum)
	var told bool
	if c.expiry, told = c.effectiveExpiry(&cp); told {
		ack.Properties.SessionExpiry = c.expiry
		ack.Properties.Mark(packet.PropSessionExpiry)
	}
	if old := s.register(c); old != nil {
		// The old connection's session ends first (its in-flight
		// publishes complete, its inbox is detached), bounded in time.
		select {
		case <-old.done:
		case <-time.After(s.opts.RouteTimeout):
		}
	}
	if !c.openSession(&cp, &ack) {
		return false
	}
	for range min(len(c.qos2In), cap(c.inq)) {
		c.inq <- struct{}{} // resumed QoS 2 ids hold their slots until PUBREL
	}
	// The CONNACK and the connected mark go together under the write
	// lock, which shutdown takes to read the mark: it then either finds
	// the client connected (CONNACK sent, the CONNECT deadline cleared)
	// and says DISCONNECT, or closes a connection that gets no CONNACK.
	c.wmu.Lock()
	err = c.writeLocked(&ack, c.version)
	if err == nil {
		c.nc.SetDeadline(time.Time{})
		c.connected.Store(true)
	}
	c.wmu.Unlock()
	if err != nil {
		return false
	}
	c.event(EventConnected, "", "")
	c.startSession()
	s.log.Debug("client connected", "client_id", c.clientID, "remote", c.remote, "version", c.version, "kind", c.kind)
	return true
}

// negotiate checks a decoded CONNECT against the server's limits and fills
// the CONNACK's properties. It answers a refusal itself and returns false.
func (c *conn) negotiate(cp *packet.Connect, ack *packet.Connack) bool {
	s := c.s
	o := &s.opts
	c.clientID = cp.ClientID
	if len(cp.ClientID) > o.MaxClientIDLength {
		s.metrics.rejected.WithLabelValues(rejectClientID).Inc()
		c.refuse(packet.ClientIdentifierNotValid, "client identifier too long")
		return false
	}
	if cp.ClientID == "" {
		// 3.1 requires an identifier; 3.1.1 allows none only with a clean
		// session (MQTT-3.1.3-8); v5 gets one assigned (MQTT-3.2.2-16).
		if c.version == packet.V31 || (c.version == packet.V311 && !cp.CleanStart) {
			s.metrics.rejected.WithLabelValues(rejectClientID).Inc()
			c.refuse(packet.ClientIdentifierNotValid, "empty client identifier")
			return false
		}
		c.clientID = assignClientID()
		if c.version == packet.V5 {
			ack.Properties.AssignedClientID = c.clientID
		}
	}
	ka := cp.KeepAlive
	if o.MaxKeepAlive > 0 && (ka == 0 || ka > o.MaxKeepAlive) {
		if c.version != packet.V5 {
			// v3 cannot be told a shorter keep alive.
			s.metrics.rejected.WithLabelValues(rejectKeepAlive).Inc()
			c.refuse(packet.ClientIdentifierNotValid, "keep alive over the server maximum")
			return false
		}
		ka = o.MaxKeepAlive
		ack.Properties.ServerKeepAlive = ka
	}
	if ka > 0 {
		c.keepAlive = time.Duration(ka) * 1500 * time.Millisecond
	}
	if c.version == packet.V5 {
		p := &cp.Properties
		c.clientMaxPacket = p.MaximumPacketSize
		c.clientAliasMax = p.TopicAliasMaximum
		c.problemInfo = !p.Has(packet.PropRequestProblemInfo) || p.RequestProblemInfo == 1
		c.sessionExpiry = p.SessionExpiry
		ack.Properties.MaximumPacketSize = uint32(o.MaxPacketSize)
	}
	return true
}

// authenticate asks the auth provider who the client is. A refusal is
// answered with the provider's reason: v5 0x86 bad user name or password,
// 0x87 not authorized, 0x8C bad authentication method, 0x88 server
// unavailable; v3 return codes 4, 5, 5 and 3.
func (c *conn) authenticate(cp *packet.Connect, ack *packet.Connack) bool {
	s := c.s
	req := &auth.Request{
		ClientID: c.clientID, Username: cp.Username, HasUsername: cp.UsernameFlag,
		Password: cp.Password, HasPassword: cp.PasswordFlag,
		PeerCertificates: transport.PeerCertificates(c.nc), RemoteAddr: c.remote,
	}
	if c.version == packet.V5 {
		req.AuthMethod, req.AuthData = cp.Properties.AuthMethod, cp.Properties.AuthData
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.ConnectTimeout)
	res, err := s.opts.Auth.Authenticate(ctx, req)
	cancel()
	if err != nil {
		code, label := packet.NotAuthorized, "not_authorized"
		switch {
		case errors.Is(err, auth.ErrBadCredentials):
			code, label = packet.BadUserNameOrPassword, "bad_credentials"
		case errors.Is(err, auth.ErrBadMethod):
			code, label = packet.BadAuthenticationMethod, rejectAuthMethod
		case errors.Is(err, auth.ErrUnavailable):
			code, label = packet.ServerUnavailable, "auth_unavailable"
			s.log.Warn("auth provider unavailable", "client_id", c.clientID, "err", err)
		}
		s.metrics.rejected.WithLabelValues(label).Inc()
		s.log.Debug("authentication failed", "client_id", c.clientID, "remote", c.remote, "err", err)
		c.user = cp.Username
		c.event(EventConnectRefused, code.String(), "")
		c.refuse(code, "authentication failed")
		return false
	}
	c.tenant, c.user, c.perms = res.Tenant, res.User, res.Checker
	if c.perms == nil {
		c.perms = auth.AllowAll{}
	}
	if req.AuthMethod != "" {
		ack.Properties.AuthMethod = req.AuthMethod // a one-step method succeeded
	}
	return true
}

// applySettings takes the tenant's settings: the protocol version must be
// enabled, the will must fit the limits and the ACL, and the CONNACK
// announces the tenant's limits to a v5 client.
func (c *conn) applySettings(cp *packet.Connect, ack *packet.Connack) bool {
	st := c.s.opts.Settings.For(c.tenant)
	c.set = st
	refuse := func(code packet.ReasonCode, reason string) bool {
		c.s.metrics.rejected.WithLabelValues("tenant_settings").Inc()
		c.event(EventConnectRefused, code.String(), reason)
		c.refuse(code, reason)
		return false
	}
	switch {
	case c.version == packet.V31 && !st.MQTT3Enabled, c.version == packet.V311 && !st.MQTT4Enabled,
		c.version == packet.V5 && !st.MQTT5Enabled:
		return refuse(packet.UnsupportedProtocolVersion, "protocol version disabled for the tenant")
	}
	if cp.WillFlag {
		w := &cp.Will
		switch {
		case len(w.Payload) > st.MaxLastWillBytes:
			return refuse(packet.PacketTooLarge, "will payload over maxLastWillBytes")
		case !c.topicAllowed(w.Topic):
			return refuse(packet.TopicNameInvalid, "will topic over the tenant's topic limits")
		case byte(w.QoS) > st.MaximumQoS:
			return refuse(packet.QoSNotSupported, "will QoS over the tenant's maximum")
		case w.Retain && !c.retainAvailable():
			return refuse(packet.RetainNotSupported, "retain is not available")
		case !c.perms.Allow(auth.Publish, w.Topic):
			c.event(EventPubDenied, "will", w.Topic)
			return refuse(packet.NotAuthorized, "will topic not allowed")
		}
	}
	if st.MsgPubPerSec > 0 {
		c.pubRate = newRate(float64(st.MsgPubPerSec), st.MsgPubPerSec)
	}
	if st.InBoundBandWidth > 0 {
		c.inBW = newRate(float64(st.InBoundBandWidth), int(st.InBoundBandWidth))
	}
	if st.OutBoundBandWidth > 0 {
		c.out.bw = newRate(float64(st.OutBoundBandWidth), int(st.OutBoundBandWidth))
	}
	if c.version != packet.V5 {
		return true
	}
	pr := &ack.Properties
	if st.ReceivingMaximum != 65535 {
		pr.ReceiveMaximum = st.ReceivingMaximum
	}
	pr.TopicAliasMaximum = st.MaxTopicAlias
	if st.MaximumQoS < 2 {
		pr.MaximumQoS = st.MaximumQoS
		pr.Mark(packet.PropMaximumQoS)
	}
	mark0 := func(available bool, id packet.PropID) {
		if !available {
			pr.Mark(id) // present with value 0: not available
		}
	}
	mark0(c.retainAvailable(), packet.PropRetainAvailable)
	mark0(st.WildcardSubscriptionEnabled, packet.PropWildcardSubAvailable)
	mark0(st.SubscriptionIdentifierEnabled, packet.PropSubIDAvailable)
	mark0(st.SharedSubscriptionEnabled, packet.PropSharedSubAvailable)
	return true
}

func (c *conn) retainAvailable() bool { return c.s.opts.Retain != nil && c.set.RetainEnabled }

// topicAllowed checks a topic name or filter against the tenant's limits
// on length, levels and level length.
func (c *conn) topicAllowed(t string) bool {
	st := c.set
	if len(t) > st.MaxTopicLength {
		return false
	}
	levels, start := 1, 0
	for i := 0; i <= len(t); i++ {
		if i == len(t) || t[i] == '/' {
			if i-start > st.MaxTopicLevelLength {
				return false
			}
			if i < len(t) {
				levels++
				start = i + 1
			}
		}
	}
	return levels <= st.MaxTopicLevels
}

func assignClientID() string { return "auto-" + randomID() }

func randomID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// refuse answers CONNECT with a failure code in the client's version.
func (c *conn) refuse(code packet.ReasonCode, reason string) {
	ack := &packet.Connack{ReasonCode: code}
	if c.version == packet.V5 {
		ack.Properties.ReasonString = reason
	}
	c.write(ack, c.version)
}

// loop reads and handles packets until the connection ends.
func (c *conn) loop() closeReason {
	s := c.s
	defer c.flushOut()
	for {
		if len(c.touched) > 0 && !c.rd.Complete() {
			c.flushOut() // the read may wait
		}
		if c.keepAlive > 0 && !c.stopping.Load() {
			// The deadline moves only when less than the grace is left,
			// to the grace plus an eighth: after the last packet it is
			// never under 1.5x the keep alive, nor over 1.7x.
			if now := time.Now(); c.readDeadline.Sub(now) < c.keepAlive {
				c.readDeadline = now.Add(c.keepAlive + c.keepAlive/8)
				c.nc.SetReadDeadline(c.readDeadline)
			}
		}
		h, body, err := c.rd.ReadPacket()
		if c.stopping.Load() {
			// Draining after the server's DISCONNECT: drop what comes
			// until the client closes or the drain deadline passes.
			if err != nil {
				return "server_shutdown"
			}
			continue
		}
		if err != nil {
			switch {
			case errors.Is(err, os.ErrDeadlineExceeded):
				c.disconnect(packet.KeepAliveTimeout, "")
				return "keep_alive_timeout"
			case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
				return "connection_lost"
			}
			var pe *packet.Error
			if errors.As(err, &pe) {
				s.metrics.decodeError(err)
				c.disconnect(pe.Code, pe.Msg)
				return closeReason("decode_" + codeLabel(pe.Code))
			}
			return "read_error"
		}
		s.metrics.bytesIn.Add(float64(h.Len() + len(body)))
		s.metrics.packetsIn[h.Type].Inc()
		if c.inBW != nil {
			c.flushOut()
			c.inBW.wait(h.Len()+len(body), s.stopping) // pace the reader: the client's TCP backs off
		}
		if done, reason := c.handle(h, body); done {
			return reason
		}
	}
}

func codeLabel(code packet.ReasonCode) string {
	switch code {
	case packet.MalformedPacket:
		return "malformed"
	case packet.PacketTooLarge:
		return "packet_too_large"
	case packet.TopicNameInvalid:
		return "topic_name_invalid"
	case packet.TopicAliasInvalid:
		return "topic_alias_invalid"
	}
	return "protocol_error"
}

// violation ends the connection for a protocol error found after decoding.
// Like decodeFailed and reply, it runs on the reader, and flushes its list
// before a write that may wait.
func (c *conn) violation(code packet.ReasonCode, msg string) (bool, closeReason) {
	c.flushOut()
	c.s.metrics.decodeErrs.WithLabelValues(code.String()).Inc()
	c.s.log.Debug("protocol violation", "client_id", c.clientID, "remote", c.remote, "code", code, "msg", msg)
	c.disconnect(code, msg)
	return true, closeReason("violation_" + codeLabel(code))
}

// handle processes one packet after CONNECT. It returns true when the
// connection must end.
func (c *conn) handle(h packet.FixedHeader, body []byte) (bool, closeReason) {
	v := c.version
	if h.Type != packet.PUBLISH {
		c.flushOut() // the flush list is for runs of PUBLISHes
	}
	switch h.Type {
	case packet.PUBLISH:
		return c.handlePublish(h, body)
	case packet.PUBREL:
		var p packet.Pubrel
		if err := p.Unpack(h.Flags, body, v); err != nil {
			return c.decodeFailed(err)
		}
		ack := packet.Pubcomp{PacketID: p.PacketID}
		if st, ok := c.qos2In[p.PacketID]; ok {
			if !st.done.Load() {
				// PUBREL before our PUBREC: the client broke the flow.
				return c.violation(packet.ProtocolError, "PUBREL before PUBREC")
			}
			if c.p != nil {
				ctx, cancel := c.routeCtx()
				err := c.s.opts.Inbox.SetQoS2In(ctx, c.tenant, c.clientID, c.p.inc, false, p.PacketID)
				cancel()
				if err != nil {
					c.s.log.Warn("releasing a QoS 2 id", "client_id", c.clientID, "err", err)
					return true, "session_store_error"
				}
			}
			delete(c.qos2In, p.PacketID)
			c.releaseIn()
		} else {
			ack.ReasonCode = packet.PacketIdentifierNotFound
		}
		return c.reply(&ack)
	case packet.PUBACK, packet.PUBREC, packet.PUBCOMP:
		// Decoded into values here (no allocation per acknowledgement).
		var id uint16
		var code packet.ReasonCode
		var err error
		switch h.Type {
		case packet.PUBACK:
			var a packet.Puback
			err = a.Unpack(h.Flags, body, v)
			id, code = a.PacketID, a.ReasonCode
		case packet.PUBREC:
			var a packet.Pubrec
			err = a.Unpack(h.Flags, body, v)
			id, code = a.PacketID, a.ReasonCode
		default:
			var a packet.Pubcomp
			err = a.Unpack(h.Flags, body, v)
			id, code = a.PacketID, a.ReasonCode
		}
		if err != nil {
			return c.decodeFailed(err)
		}
		if !c.out.acked(h.Type, id, code) {
			// An acknowledgement for nothing in flight: ignored, as most
			// brokers do (a late duplicate does no harm).
			c.s.log.Debug("acknowledgement for no message in flight", "client_id", c.clientID, "type", h.Type, "id", id)
		}
		return false, ""
	case packet.SUBSCRIBE:
		var p packet.Subscribe
		if err := p.Unpack(h.Flags, body, v); err != nil {
			return c.decodeFailed(err)
		}
		return c.handleSubscribe(&p)
	case packet.UNSUBSCRIBE:
		var p packet.Unsubscribe
		if err := p.Unpack(h.Flags, body, v); err != nil {
			return c.decodeFailed(err)
		}
		return c.handleUnsubscribe(&p)
	case packet.PINGREQ:
		if err := (&packet.Pingreq{}).Unpack(h.Flags, body, v); err != nil {
			return c.decodeFailed(err)
		}
		return c.reply(&packet.Pingresp{})
	case packet.DISCONNECT:
		var p packet.Disconnect
		if err := p.Unpack(h.Flags, body, v); err != nil {
			return c.decodeFailed(err)
		}
		if v == packet.V5 && c.sessionExpiry == 0 && p.Properties.SessionExpiry != 0 {
			// MQTT-3.14.2-1: expiry cannot go from 0 to non-zero.
			return c.violation(packet.ProtocolError, "session expiry set on DISCONNECT after 0 at CONNECT")
		}
		if v == packet.V5 && p.Properties.Has(packet.PropSessionExpiry) && c.p != nil {
			c.expiry = min(p.Properties.SessionExpiry, c.set.MaxSessionExpirySeconds)
		}
		if v == packet.V5 && p.ReasonCode == packet.DisconnectWithWillMessage {
			return true, "client_disconnect_with_will"
		}
		return true, "client_disconnect"
	case packet.AUTH:
		if _, err := packet.Decode(h, body, v); err != nil {
			return c.decodeFailed(err)
		}
		// MQTT-4.12.0-?: AUTH without an authentication method in CONNECT.
		return c.violation(packet.ProtocolError, "AUTH without enhanced authentication")
	case packet.CONNECT:
		return c.violation(packet.ProtocolError, "second CONNECT") // MQTT-3.1.0-2
	default:
		// CONNACK, SUBACK, UNSUBACK, PINGRESP travel only to clients;
		// type 0 (and 15 before v5) is reserved.
		if h.Type == 0 || (h.Type == packet.AUTH && v != packet.V5) {
			return c.violation(packet.MalformedPacket, "reserved packet type")
		}
		return c.violation(packet.ProtocolError, h.Type.String()+" sent by a client")
	}
}

func (c *conn) decodeFailed(err error) (bool, closeReason) {
	c.flushOut()
	code := packet.CodeOf(err)
	c.s.metrics.decodeError(err)
	c.s.log.Debug("bad packet", "client_id", c.clientID, "remote", c.remote, "err", err)
	c.disconnect(code, err.Error())
	return true, closeReason("decode_" + codeLabel(code))
}

// reply writes a response; a failed write ends the connection.
func (c *conn) reply(p packet.Packet) (bool, closeReason) {
	c.flushOut()
	if err := c.write(p, c.version); err != nil {
		return true, "write_error"
	}
	return false, ""
}

// disconnect sends a v5 DISCONNECT with code (mapped to a code DISCONNECT
// may carry) before the connection closes; v3 has no such packet.
func (c *conn) disconnect(code packet.ReasonCode, reason string) {
	if c.version != packet.V5 || !c.connected.Load() {
		return
	}
	switch code {
	case packet.MalformedPacket, packet.ProtocolError, packet.PacketTooLarge, packet.TopicNameInvalid,
		packet.TopicAliasInvalid, packet.ReceiveMaximumExceeded, packet.KeepAliveTimeout,
		packet.ServerShuttingDown, packet.SessionTakenOver, packet.QoSNotSupported, packet.RetainNotSupported:
	default:
		code = packet.ProtocolError
	}
	d := &packet.Disconnect{ReasonCode: code}
	if c.problemInfo {
		d.Properties.ReasonString = reason
	}
	c.write(d, packet.V5)
}

// write encodes p for version v and writes it under the write lock. For a
// v5 client with a Maximum Packet Size, a packet over it is first shrunk
// by dropping its reason string and user properties (MQTT-3.1.2-25); a
// PUBLISH still too large is discarded, any other packet fails with
// errTooLarge.
func (c *conn) write(p packet.Packet, v packet.Version) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeLocked(p, v)
}

// writeLocked is write with the write lock held.
func (c *conn) writeLocked(p packet.Packet, v packet.Version) error {
	buf, err := p.Append(c.wbuf[:0], v)
	if err != nil {
		c.s.log.Error("encoding a packet", "type", p.Type(), "err", err)
		return err
	}
	if c.clientMaxPacket > 0 && len(buf) > int(c.clientMaxPacket) {
		buf, err = c.shrink(p, v)
		if err != nil {
			if p.Type() == packet.PUBLISH {
				return nil // discarded, as MQTT-3.1.2-25 requires; the session goes on
			}
			// A protocol response that cannot fit: the client's limit makes
			// the protocol impossible, so the connection ends.
			c.s.log.Debug("response over the client's maximum packet size", "client_id", c.clientID,
				"type", p.Type(), "max", c.clientMaxPacket)
			return err
		}
	}
	c.wbuf = buf
	c.nc.SetWriteDeadline(time.Now().Add(c.s.opts.WriteTimeout))
	n, err := c.nc.Write(buf)
	c.s.metrics.bytesOut.Add(float64(n))
	if err != nil {
		return err
	}
	c.s.metrics.packetsOut[p.Type()].Inc()
	if cap(c.wbuf) > 64<<10 {
		c.wbuf = nil // do not keep a large buffer for an idle connection
	}
	return nil
}

// tryWrite writes as much of buf as the socket takes at once (c.raw must
// be set) and returns how much that was: n < len(buf) with no error means
// the socket is full, or another writer holds the write lock. It never
// waits.
func (c *conn) tryWrite(buf []byte) (int, error) {
	if !c.wmu.TryLock() {
		return 0, nil
	}
	defer c.wmu.Unlock()
	return c.raw.TryWrite(buf)
}

// writeRaw writes encoded packets under the write lock.
func (c *conn) writeRaw(buf []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.nc.SetWriteDeadline(time.Now().Add(c.s.opts.WriteTimeout))
	return c.nc.Write(buf)
}

// kick ends a connection taken over by a newer one with the same client
// id: a v5 client gets DISCONNECT 0x8E (MQTT-3.1.4-3). It runs on its own
// goroutine, so a stuck old connection cannot hold up the new one.
func (c *conn) kick() {
	c.kicked.Store(true)
	c.wmu.Lock()
	c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	c.wmu.Unlock()
	c.disconnect(packet.SessionTakenOver, "another connection took the session over")
	c.nc.Close()
}

var errTooLarge = errors.New("mqtt: packet over the client's maximum packet size")

func (c *conn) shrink(p packet.Packet, v packet.Version) ([]byte, error) {
	if p.Type() == packet.PUBLISH {
		return nil, errTooLarge // a message's properties are its content
	}
	if props := packet.PropertiesOf(p); props != nil {
		props.ReasonString, props.User = "", nil
		buf, err := p.Append(c.wbuf[:0], v)
		if err == nil && len(buf) <= int(c.clientMaxPacket) {
			return buf, nil
		}
	}
	return nil, errTooLarge
}

// shutdown is called by Server.Close: a connected v5 client gets DISCONNECT
// 0x8B; every connection then half-closes and its serve goroutine drains
// what the client still sends until the client closes or ctx ends, so the
// DISCONNECT is not lost to a reset.
func (c *conn) shutdown(ctx context.Context) {
	c.stopping.Store(true)
	c.wmu.Lock() // see connect: not between a CONNACK and its mark
	connected := c.connected.Load()
	c.wmu.Unlock()
	if !connected {
		c.nc.Close()
		return
	}
	if deadline, ok := ctx.Deadline(); ok {
		c.nc.SetReadDeadline(deadline) // after connect cleared its deadline
	}
	c.disconnect(packet.ServerShuttingDown, "server shutting down")
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	} else {
		c.nc.Close()
	}
}

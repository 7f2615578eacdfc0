package mqtt

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/bifromq-go/bifromq/dist"
	"github.com/bifromq-go/bifromq/mqtt/auth"
	"github.com/bifromq-go/bifromq/mqtt/packet"
)

// Inbound publishes. Every PUBLISH goes to the router in the order it was
// read; the router completes one publisher's messages in that order, and
// the PUBACK or PUBREC is queued on the outbox only then, so it is sent
// after dist has accepted the message and in the order of the PUBLISHes
// (MQTT-4.6.0-2).
//
// Flow control: QoS 1 messages awaiting dist and QoS 2 messages awaiting
// PUBREL count against the server's Receive Maximum. A v5 client over it
// breaks the protocol (DISCONNECT 0x93); a v3 client, which was never told
// a limit, waits (its QoS 1 messages are read again as dist completes), and
// over the limit with QoS 2 alone (which only its PUBREL can release) is
// disconnected.

// qos2State is an inbound QoS 2 message awaiting PUBREL. The map holding
// it is the reader's; done is set by dist's completion.
type qos2State struct {
	done atomic.Bool
}

func (c *conn) handlePublish(h packet.FixedHeader, body []byte) (bool, closeReason) {
	p := &c.pub
	if err := p.Unpack(h.Flags, body, c.version); err != nil {
		return c.decodeFailed(err)
	}
	topic := p.Topic
	if c.version == packet.V5 {
		if len(p.Properties.SubscriptionIDs) > 0 {
			return c.violation(packet.ProtocolError, "PUBLISH from a client with a subscription identifier") // MQTT-3.3.4-6
		}
		if alias := p.Properties.TopicAlias; alias != 0 {
			if alias > c.set.MaxTopicAlias {
				return c.violation(packet.TopicAliasInvalid, "topic alias over the maximum") // MQTT-3.3.2-9
			}
			if len(topic) > 0 {
				if c.aliases == nil {
					c.aliases = make(map[uint16]string)
				}
				if c.aliases[alias] != string(topic) {
					c.aliases[alias] = string(topic)
				}
			} else if t, ok := c.aliases[alias]; ok {
				topic = bytesOf(t)
			} else {
				return c.violation(packet.ProtocolError, "unknown topic alias")
			}
		}
	}
	st := c.set
	if byte(p.QoS) > st.MaximumQoS {
		return c.violation(packet.QoSNotSupported, "QoS over the tenant's maximum") // MQTT-3.3.1-4
	}
	if p.Retain && !c.retainAvailable() {
		if c.version == packet.V5 {
			return c.violation(packet.RetainNotSupported, "retain is not available") // MQTT-3.3.2-?
		}
		p.Retain = false // v3: routed, not kept
	}
	if !c.topicAllowed(string(topic)) {
		c.event(EventLimitExceeded, "topic", string(topic))
		return c.violation(packet.TopicNameInvalid, "topic over the tenant's limits on length or levels")
	}
	// Refusals that acknowledge (v5 with a reason code; v3 as success,
	// the message dropped): payload size, publish rate, the ACL.
	refusal := packet.Success
	switch {
	case len(p.Payload) > st.MaxUserPayloadBytes:
		refusal = packet.QuotaExceeded // PUBACK cannot carry 0x95
		c.event(EventLimitExceeded, "payload", string(topic))
	case c.pubRate != nil && !c.pubRate.allow(1):
		refusal = packet.QuotaExceeded // 0x96 is for DISCONNECT only
		c.event(EventThrottled, "msgPubPerSec", string(topic))
	case !c.perms.Allow(auth.Publish, string(topic)):
		refusal = packet.NotAuthorized
		c.event(EventPubDenied, "", string(topic))
		if c.version != packet.V5 && c.s.opts.DenyV3Publish == V3DenyDisconnect {
			return true, "publish_denied"
		}
	}
	if refusal != packet.Success {
		return c.refusePublish(p, refusal)
	}
	if p.QoS == packet.ExactlyOnce {
		if st, dup := c.qos2In[p.PacketID]; dup {
			// Distributed already (MQTT-4.3.3): acknowledge again once
			// the first copy is accepted; its completion sends PUBREC.
			if st.done.Load() {
				return c.reply(&packet.Pubrec{PacketID: p.PacketID})
			}
			return false, ""
		}
		if !c.acquireIn(false) {
			return c.violation(packet.ReceiveMaximumExceeded, "more QoS 2 messages awaiting PUBREL than Receive Maximum") // MQTT-3.3.4-8
		}
		if c.qos2In == nil {
			c.qos2In = make(map[uint16]*qos2State)
		}
		st := &qos2State{}
		c.qos2In[p.PacketID] = st
		c.route(p, topic, st)
		return false, ""
	}
	if p.QoS == packet.AtLeastOnce {
		if !c.acquireIn(c.version != packet.V5) {
			return c.violation(packet.ReceiveMaximumExceeded, "more QoS 1 messages unacknowledged than Receive Maximum")
		}
	}
	c.route(p, topic, nil)
	return false, ""
}

// refusePublish answers a PUBLISH that is not routed: v5 with the reason
// code (QoS 1 PUBACK, QoS 2 PUBREC), v3 with a plain acknowledgement; QoS
// 0 is dropped.
func (c *conn) refusePublish(p *packet.Publish, code packet.ReasonCode) (bool, closeReason) {
	if c.version != packet.V5 {
		code = packet.Success
	}
	switch p.QoS {
	case packet.AtLeastOnce:
		return c.reply(&packet.Puback{PacketID: p.PacketID, ReasonCode: code})
	case packet.ExactlyOnce:
		if code != packet.Success {
			return c.reply(&packet.Pubrec{PacketID: p.PacketID, ReasonCode: code}) // ends the flow (v5)
		}
		// v3: the flow goes on to PUBREL as for any message.
		if _, dup := c.qos2In[p.PacketID]; !dup {
			if !c.acquireIn(false) {
				return c.violation(packet.ReceiveMaximumExceeded, "more QoS 2 messages awaiting PUBREL than Receive Maximum")
			}
			if c.qos2In == nil {
				c.qos2In = make(map[uint16]*qos2State)
			}
			st := &qos2State{}
			st.done.Store(true)
			c.qos2In[p.PacketID] = st
		}
		return c.reply(&packet.Pubrec{PacketID: p.PacketID})
	}
	return false, ""
}

// acquireIn takes one of the Receive Maximum slots; with wait it waits
// for one, else it fails when none is free.
func (c *conn) acquireIn(wait bool) bool {
	select {
	case c.inq <- struct{}{}:
		return true
	default:
	}
	if !wait {
		return false
	}
	c.flushOut() // nothing held while waiting
	c.inq <- struct{}{}
	return true
}

func (c *conn) releaseIn() { <-c.inq }

// route hands a PUBLISH to the router. A QoS 1 or 2 message is
// acknowledged (PUBACK, or PUBREC with st marked done) once dist has
// answered; for a v3 client a failure closes the connection instead (v3
// cannot refuse a message).
func (c *conn) route(p *packet.Publish, topic []byte, st *qos2State) {
	now := time.Now()
	m := &dist.Message{
		Topic:     string(topic),
		Payload:   append([]byte(nil), p.Payload...),
		QoS:       byte(p.QoS),
		Retain:    p.Retain,
		Publisher: c.clientID,
	}
	if c.version == packet.V5 {
		setMessageProps(m, &p.Properties, now)
	}
	c.s.metrics.published.Inc()
	var retainErr error
	if m.Retain {
		c.flushOut() // storing waits
		retainErr = c.storeRetained(m)
	}
	if n, err, ok := c.s.opts.Router.PubInline(&c.rctx, c.tenant, m); ok {
		if p.QoS != packet.AtMostOnce {
			c.acknowledge(p.PacketID, p.QoS, st, m.Topic, n, errors.Join(err, retainErr), c)
		}
		return
	}
	c.flushOut() // the lane may be full
	if p.QoS == packet.AtMostOnce {
		c.s.opts.Router.PubAsync(c.tenant, m, nil)
		return
	}
	ip := c.s.inPubs.Get().(*inPub)
	ip.c, ip.topic, ip.id, ip.qos, ip.st, ip.retainErr = c, m.Topic, p.PacketID, p.QoS, st, retainErr
	c.s.opts.Router.PubAsync(c.tenant, m, ip.done)
}

// inPub is a QoS 1 or 2 PUBLISH awaiting dist's answer: what its
// completion needs (the packet is reused by the reader). Recycled, with
// its done func bound once, so a publish allocates no closure.
type inPub struct {
	c         *conn
	topic     string
	id        uint16
	qos       packet.QoS
	st        *qos2State // QoS 2
	retainErr error
	done      func(int, error) // complete, bound to this inPub
}

// newInPub is the Server's inPubs.New.
func newInPub() any {
	ip := new(inPub)
	ip.done = ip.complete
	return ip
}

// complete is dist's answer, on a lane's goroutine.
func (ip *inPub) complete(n int, err error) {
	c, id, qos, st, topic := ip.c, ip.id, ip.qos, ip.st, ip.topic
	if err == nil && ip.retainErr != nil {
		err = ip.retainErr
	}
	*ip = inPub{done: ip.done}
	c.s.inPubs.Put(ip)
	c.acknowledge(id, qos, st, topic, n, err, nil)
}

// acknowledge answers a QoS 1 or 2 PUBLISH once dist has: PUBACK, or
// PUBREC with st marked done, with the reason code for n deliveries and
// err; rd is the reader it runs on, if any (see outbox.startLocked). A v3
// client cannot be told of a failure: its connection ends instead.
func (c *conn) acknowledge(id uint16, qos packet.QoS, st *qos2State, topic string, n int, err error, rd *conn) {
	if err != nil {
		c.s.log.Warn("publish not routed", "client_id", c.clientID, "topic", topic, "err", err)
	}
	code := packet.Success
	switch {
	case err != nil && c.version != packet.V5:
		// v3 has no failure acknowledgement: end the connection so the
		// client knows it was not taken.
		c.nc.Close()
		if qos == packet.AtLeastOnce {
			c.releaseIn() // the reader may wait for the slot
		}
		return
	case err != nil && errors.Is(err, dist.ErrClosed):
		code = packet.ServerUnavailable
	case err != nil:
		code = packet.UnspecifiedError
	case n == 0 && c.version == packet.V5:
		code = packet.NoMatchingSubscribers
	}
	if qos == packet.ExactlyOnce {
		st.done.Store(true)
		// A persistent session stores the id before PUBREC.
		c.out.pushAck(ack{t: packet.PUBREC, id: id, code: code, recordQoS2: c.p != nil && code < 0x80}, rd)
		return
	}
	c.releaseIn()
	c.out.pushAck(ack{t: packet.PUBACK, id: id, code: code}, rd)
}

// storeRetained keeps a RETAIN message as its topic's retained message
// (an empty payload clears it). The message is routed either way.
func (c *conn) storeRetained(m *dist.Message) error {
	if !m.Retain || c.s.opts.Retain == nil {
		return nil
	}
	ctx, cancel := c.routeCtx()
	defer cancel()
	if err := c.s.opts.Retain.Retain(ctx, c.tenant, m); err != nil {
		c.s.log.Warn("storing a retained message", "client_id", c.clientID, "topic", m.Topic, "err", err)
		return err
	}
	return nil
}

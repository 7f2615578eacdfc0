package mqtt

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/bifromq-go/bifromq/dist"
	"github.com/bifromq-go/bifromq/mqtt/auth"
	"github.com/bifromq-go/bifromq/mqtt/packet"
)

// subscription is one topic filter's options in a session.
type subscription struct {
	qos     byte   // granted QoS
	noLocal bool   // v5: not the subscriber's own messages
	rap     bool   // v5: retain as published
	rh      byte   // v5: retain handling
	id      uint32 // v5: subscription identifier; 0 none
}

func (s subscription) ids() []uint32 {
	if s.id == 0 {
		return nil
	}
	return []uint32{s.id}
}

// session is the transient session state a connection owns (its
// goroutine only): the subscriptions, by filter as the client wrote it.
type session struct {
	subs map[string]localKey
}

func (c *conn) localKey(filter string) (localKey, error) {
	kind, group, f, err := dist.ParseFilter(filter)
	if err != nil {
		return localKey{}, err
	}
	return localKey{tenant: c.tenant, kind: kind, group: group, filter: f}, nil
}

func (c *conn) routeCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), c.s.opts.RouteTimeout)
}

func (c *conn) handleSubscribe(p *packet.Subscribe) (bool, closeReason) {
	v := c.version
	var subID uint32
	if v == packet.V5 && len(p.Properties.SubscriptionIDs) > 0 {
		subID = p.Properties.SubscriptionIDs[0]
	}
	ack := packet.Suback{PacketID: p.PacketID, ReasonCodes: make([]packet.ReasonCode, len(p.Subscriptions))}
	ctx, cancel := c.routeCtx()
	defer cancel()
	var retained []retainedFor
	st := c.set
	for i, sub := range p.Subscriptions {
		k, err := c.localKey(sub.Filter)
		if err != nil {
			ack.ReasonCodes[i] = packet.TopicFilterInvalid // 0x80 for v3
			continue
		}
		if v == packet.V5 && sub.NoLocal && k.kind != dist.Normal {
			return c.violation(packet.ProtocolError, "no local on a shared subscription") // MQTT-3.8.3-4
		}
		if code := c.subscriptionRefused(i, k, subID); code != 0 {
			if v != packet.V5 {
				code = packet.UnspecifiedError // v3's only failure code, 0x80
			}
			ack.ReasonCodes[i] = code
			continue
		}
		granted := min(byte(sub.QoS), st.MaximumQoS)
		opts := subscription{qos: granted, noLocal: sub.NoLocal, rap: sub.RetainAsPublished, rh: sub.RetainHandling, id: subID}
		_, existed := c.sess.subs[sub.Filter]
		if c.p != nil {
			ack.ReasonCodes[i] = c.subscribePersistent(sub.Filter, opts)
		} else if err := c.s.local.subscribe(ctx, k, c, opts); err != nil {
			c.s.log.Warn("subscribe failed", "client_id", c.clientID, "filter", sub.Filter, "err", err)
			ack.ReasonCodes[i] = packet.UnspecifiedError
		} else {
			if c.sess.subs == nil {
				c.sess.subs = make(map[string]localKey)
			}
			c.sess.subs[sub.Filter] = k
			ack.ReasonCodes[i] = packet.ReasonCode(granted)
		}
		// Retained messages (MQTT-3.3.1-9..11): not for shared
		// subscriptions; retain handling 1 only for a new subscription,
		// 2 never; v3 always.
		if ack.ReasonCodes[i] < 0x80 && k.kind == dist.Normal &&
			(v != packet.V5 || sub.RetainHandling == 0 || sub.RetainHandling == 1 && !existed) {
			retained = append(retained, retainedFor{filter: k.filter, sub: opts})
		}
	}
	if done, reason := c.reply(&ack); done {
		return done, reason
	}
	c.sendRetained(retained)
	return false, ""
}

// subscriptionRefused checks the i-th filter of a SUBSCRIBE against the
// tenant's settings and the ACL; 0 when it may go ahead.
func (c *conn) subscriptionRefused(i int, k localKey, subID uint32) packet.ReasonCode {
	st := c.set
	wild := strings.ContainsAny(k.filter, "+#")
	refuse := func(code packet.ReasonCode, why string) packet.ReasonCode {
		c.event(EventLimitExceeded, why, k.filter)
		return code
	}
	switch {
	case i >= st.MaxTopicFiltersPerSub:
		return refuse(packet.QuotaExceeded, "maxTopicFiltersPerSub")
	case !c.topicAllowed(k.filter):
		return refuse(packet.TopicFilterInvalid, "topic")
	case wild && !st.WildcardSubscriptionEnabled:
		return refuse(packet.WildcardSubscriptionsNotSupported, "wildcardSubscriptionEnabled")
	case k.kind != dist.Normal && !st.SharedSubscriptionEnabled:
		return refuse(packet.SharedSubscriptionsNotSupported, "sharedSubscriptionEnabled")
	case subID != 0 && !st.SubscriptionIdentifierEnabled:
		return refuse(packet.SubscriptionIdentifiersNotSupported, "subscriptionIdentifierEnabled")
	case k.kind != dist.Normal && c.s.local.members(k) >= st.MaxSharedGroupMembers:
		return refuse(packet.QuotaExceeded, "maxSharedGroupMembers")
	case !c.perms.Allow(auth.Subscribe, k.filter):
		c.event(EventSubDenied, "", k.filter)
		return c.s.opts.DenySubscribeCode
	}
	return 0
}

// retainedFor is a granted subscription that gets the retained messages.
type retainedFor struct {
	filter string
	sub    subscription
}

// sendRetained queues the retained messages matching each new
// subscription, after its SUBACK, with RETAIN set (MQTT-3.3.1-8).
func (c *conn) sendRetained(subs []retainedFor) {
	st := c.s.opts.Retain
	if st == nil || len(subs) == 0 {
		return
	}
	ctx, cancel := c.routeCtx()
	defer cancel()
	for _, r := range subs {
		msgs, err := st.Match(ctx, c.tenant, r.filter, c.set.RetainMessageMatchLimit)
		if err != nil {
			c.s.log.Warn("matching retained messages", "client_id", c.clientID, "filter", r.filter, "err", err)
			continue
		}
		for _, m := range msgs {
			if r.sub.noLocal && m.Publisher == c.clientID {
				continue
			}
			c.out.enqueue(target{c: c, msg: m, qos: min(m.QoS, r.sub.qos), rap: true, ids: r.sub.ids()})
		}
	}
}

func (c *conn) handleUnsubscribe(p *packet.Unsubscribe) (bool, closeReason) {
	ack := packet.Unsuback{PacketID: p.PacketID, ReasonCodes: make([]packet.ReasonCode, len(p.Filters))}
	ctx, cancel := c.routeCtx()
	defer cancel()
	for i, f := range p.Filters {
		if packet.ValidateTopicFilter(f) != nil {
			ack.ReasonCodes[i] = packet.TopicFilterInvalid
			continue
		}
		if c.p != nil {
			ack.ReasonCodes[i] = c.unsubscribePersistent(f)
			continue
		}
		k, ok := c.sess.subs[f]
		if !ok {
			ack.ReasonCodes[i] = packet.NoSubscriptionExisted
			continue
		}
		delete(c.sess.subs, f)
		c.s.local.unsubscribe(ctx, k, c)
		ack.ReasonCodes[i] = packet.Success
	}
	if c.version != packet.V5 {
		ack.ReasonCodes = nil // v3 UNSUBACK carries none
	}
	return c.reply(&ack)
}

// endSession removes the session's subscriptions (and, for the last local
// subscriber of a filter, its route).
func (c *conn) endSession() {
	if len(c.sess.subs) == 0 {
		return
	}
	ctx, cancel := c.routeCtx()
	defer cancel()
	for f, k := range c.sess.subs {
		c.s.local.unsubscribe(ctx, k, c)
		delete(c.sess.subs, f)
	}
}

// will is a CONNECT's will message, kept until the connection ends.
type will struct {
	msg    *dist.Message
	expiry time.Duration // message expiry interval, counted from publication; 0 none
	delay  uint32        // will delay interval, seconds
}

// newWill keeps a CONNECT's will as the message it will publish.
func (c *conn) newWill(w *packet.Will) *will {
	m := &dist.Message{
		Topic:     w.Topic,
		Payload:   append([]byte(nil), w.Payload...),
		QoS:       byte(w.QoS),
		Retain:    w.Retain,
		Publisher: c.clientID,
	}
	wl := &will{msg: m}
	if c.version == packet.V5 {
		setMessageProps(m, &w.Properties, time.Time{})
		m.Expires = time.Time{}
		wl.expiry = time.Duration(w.Properties.MessageExpiry) * time.Second
		wl.delay = w.Properties.WillDelay
	}
	return wl
}

// publishWill sends the will now: the connection ended without a normal
// DISCONNECT and the will is due at once (a transient session ends with
// its connection, so min(will delay, session expiry 0) is now,
// MQTT-3.1.3-9; a persistent session's delayed will is kept by the inbox
// instead). A will with RETAIN is first stored as its topic's retained
// message (MQTT-3.1.2-17). Message expiry counts from now.
func (c *conn) publishWill() {
	if c.will == nil {
		return
	}
	m := c.will.msg
	if c.will.expiry > 0 {
		m.Expires = time.Now().Add(c.will.expiry)
	}
	c.will = nil
	c.s.metrics.willsPublished.Inc()
	c.storeRetained(m) // logs a failure; the will is published either way
	c.s.opts.Router.PubAsync(c.tenant, m, func(_ int, err error) {
		if err != nil && !errors.Is(err, dist.ErrClosed) {
			c.s.log.Warn("publishing a will", "client_id", c.clientID, "topic", m.Topic, "err", err)
		}
	})
}

// setMessageProps copies a PUBLISH's (or will's) properties that travel
// with the message; a Message Expiry Interval counts from arrived. (An
// interval of 0 is taken as none.)
func setMessageProps(m *dist.Message, p *packet.Properties, arrived time.Time) {
	// Built on the stack, copied to the heap only when there is something.
	mp := dist.Props{PayloadFormat: p.PayloadFormat, ContentType: p.ContentType, ResponseTopic: p.ResponseTopic,
		CorrelationData: p.CorrelationData, User: p.User}
	if !mp.Empty() {
		// The packet's slices are the reader's: copy them.
		mp.CorrelationData = bytes.Clone(mp.CorrelationData)
		mp.User = slices.Clone(mp.User)
		held := mp
		m.Props = &held
	}
	if p.MessageExpiry > 0 {
		m.Expires = arrived.Add(time.Duration(p.MessageExpiry) * time.Second)
	}
}

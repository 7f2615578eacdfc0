package mqtt

import (
	"errors"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/bifromq-go/bifromq/dist"
	"github.com/bifromq-go/bifromq/inbox"
	"github.com/bifromq-go/bifromq/mqtt/packet"
)

// Persistent sessions. A session whose client asked for clean start 0 or
// a session expiry over 0 lives in the inbox store (Options.Inbox): its
// subscriptions route to the inbox, which queues every message durably;
// the connection fetches from the inbox while the client has capacity
// (woken when messages are queued) and commits what the client
// acknowledged. Anything not committed when the connection ends is sent
// again, with its original packet id, after the client resumes the
// session on any connection. Inbound QoS 2 packet ids awaiting PUBREL and
// outbound PUBREC marks are stored before PUBREC and PUBREL go out, so
// QoS 2 stays exactly-once across a reconnect.

// persist is a connection's persistent session.
type persist struct {
	inc      uint64 // the inbox's incarnation
	owner    string // this connection, as the inbox knows its attachment
	unlisten func()
}

// connSeq numbers the connections of a process, for owner names.
var connSeq atomic.Uint64

// effectiveExpiry works out the session expiry interval a CONNECT asks
// for, capped by the tenant's MaxSessionExpirySeconds; told reports whether a v5 client must be told
// the value in CONNACK.
func (c *conn) effectiveExpiry(cp *packet.Connect) (expiry uint32, told bool) {
	o := &c.s.opts
	if o.Inbox == nil {
		// Sessions are not kept: a v5 client asking for more is told 0
		// (MQTT-3.2.2.3.2).
		return 0, c.version == packet.V5 && cp.Properties.SessionExpiry > 0
	}
	limit := c.set.MaxSessionExpirySeconds
	if c.version != packet.V5 {
		if cp.CleanStart {
			return 0, false
		}
		return limit, false
	}
	e := cp.Properties.SessionExpiry
	if e > limit {
		return limit, true
	}
	return e, false
}

// openSession attaches a persistent session (or, for a clean session,
// discards a stored one with the same id). It answers a failure itself
// and returns false.
func (c *conn) openSession(cp *packet.Connect, ack *packet.Connack) bool {
	s := c.s
	st := s.opts.Inbox
	if st == nil {
		return true
	}
	ctx, cancel := c.routeCtx()
	defer cancel()
	if cp.CleanStart && c.expiry == 0 {
		// A transient session: any stored session of this id ends now
		// (MQTT-3.1.2-4).
		if exists, err := st.Exists(ctx, c.tenant, c.clientID); err == nil && !exists {
			return true
		}
		owner := c.ownerName()
		res, err := st.Attach(ctx, inbox.AttachRequest{Tenant: c.tenant, ID: c.clientID, Clean: true,
			Owner: owner, Incarnation: s.local.incarnation()})
		if err == nil {
			st.Unroute(c.tenant, c.clientID, res.DiscardedInc, res.Discarded)
			_, _, err = st.Detach(ctx, c.tenant, c.clientID, res.Meta.Incarnation, 0, owner, nil, 0)
		}
		if err != nil {
			return c.storeFailed(err)
		}
		return true
	}
	owner := c.ownerName()
	res, err := st.Attach(ctx, inbox.AttachRequest{
		Tenant: c.tenant, ID: c.clientID, Clean: cp.CleanStart, Expiry: c.expiry,
		Limit: c.set.SessionInboxSize, DropOldest: c.set.QoS0DropOldest, Owner: owner,
		Incarnation: s.local.incarnation(),
	})
	if err != nil {
		return c.storeFailed(err)
	}
	if len(res.Discarded) > 0 {
		st.Unroute(c.tenant, c.clientID, res.DiscardedInc, res.Discarded)
	}
	m := res.Meta
	c.p = &persist{inc: m.Incarnation, owner: owner}
	ack.SessionPresent = res.Present
	for f := range m.Subs {
		if c.sess.subs == nil {
			c.sess.subs = make(map[string]localKey)
		}
		c.sess.subs[f] = localKey{}
	}
	for _, id := range m.QoS2In {
		if c.qos2In == nil {
			c.qos2In = make(map[uint16]*qos2State)
		}
		st := &qos2State{}
		st.done.Store(true)
		c.qos2In[id] = st
	}
	c.out.p = &outPersist{st: st, tenant: c.tenant, id: c.clientID, inc: m.Incarnation, wake: true,
		dupBelow: m.SentTail, sent: m.SentTail}
	return true
}

// startSession begins the outbound flow of a persistent session, after
// CONNACK.
func (c *conn) startSession() {
	if c.p == nil {
		return
	}
	c.p.unlisten = c.s.opts.Inbox.Listen(c.tenant, c.clientID, c.out.wakeUp)
	c.out.wakeUp()
}

func (c *conn) ownerName() string {
	return c.s.instance + "/" + strconv.FormatUint(connSeq.Add(1), 10)
}

// storeFailed refuses a CONNECT the session store could not serve.
func (c *conn) storeFailed(err error) bool {
	c.s.log.Warn("session store unavailable", "client_id", c.clientID, "err", err)
	c.s.metrics.rejected.WithLabelValues(rejectSessionStore).Inc()
	c.refuse(packet.ServerUnavailable, "session store unavailable")
	return false
}

// closeSession detaches a persistent session when its connection ends:
// it stays in the inbox for its expiry (0: it is deleted and unrouted),
// with the will kept when it is delayed.
func (c *conn) closeSession(abnormal bool) {
	p := c.p
	if p.unlisten != nil {
		p.unlisten()
	}
	c.out.flushCommits()
	var keep *inbox.Will
	if abnormal && c.will != nil {
		if c.will.delay == 0 || c.expiry == 0 {
			c.publishWill()
		} else {
			m := c.will.msg
			if c.will.expiry > 0 {
				m.Expires = time.Now().Add(time.Duration(c.will.delay)*time.Second + c.will.expiry)
			}
			keep = &inbox.Will{Message: m, Delay: c.will.delay}
		}
	}
	c.will = nil
	ctx, cancel := c.routeCtx()
	defer cancel()
	deleted, filters, err := c.s.opts.Inbox.Detach(ctx, c.tenant, c.clientID, p.inc, c.expiry, p.owner, keep, c.out.sentTail())
	switch {
	case errors.Is(err, inbox.ErrNoInbox):
		// Taken over, or expired meanwhile: not ours any more.
	case err != nil:
		c.s.log.Warn("detaching a session", "client_id", c.clientID, "err", err)
	case deleted:
		c.s.opts.Inbox.Unroute(c.tenant, c.clientID, p.inc, filters)
	}
}

// subscribePersistent records a subscription in the inbox, then routes it.
func (c *conn) subscribePersistent(filter string, o subscription) packet.ReasonCode {
	ctx, cancel := c.routeCtx()
	defer cancel()
	st := c.s.opts.Inbox
	err := st.Subscribe(ctx, c.tenant, c.clientID, c.p.inc, filter,
		inbox.SubOptions{QoS: o.qos, NoLocal: o.noLocal, RetainAsPub: o.rap, RetainHandling: o.rh, ID: o.id},
		c.set.MaxTopicFiltersPerInbox)
	if errors.Is(err, inbox.ErrTooManyFilters) {
		if c.version == packet.V5 {
			return packet.QuotaExceeded
		}
		return packet.UnspecifiedError
	}
	if err == nil {
		_, err = c.s.opts.Router.AddRoute(ctx, mustRoute(c.tenant, c.clientID, filter), c.p.inc)
	}
	if err != nil {
		c.s.log.Warn("subscribe failed", "client_id", c.clientID, "filter", filter, "err", err)
		return packet.UnspecifiedError
	}
	if c.sess.subs == nil {
		c.sess.subs = make(map[string]localKey)
	}
	c.sess.subs[filter] = localKey{}
	return packet.ReasonCode(o.qos)
}

// unsubscribePersistent removes a subscription from the inbox and its
// route.
func (c *conn) unsubscribePersistent(filter string) packet.ReasonCode {
	ctx, cancel := c.routeCtx()
	defer cancel()
	existed, err := c.s.opts.Inbox.Unsubscribe(ctx, c.tenant, c.clientID, c.p.inc, filter)
	if err == nil && existed {
		_, err = c.s.opts.Router.RemoveRoute(ctx, mustRoute(c.tenant, c.clientID, filter), c.p.inc)
	}
	delete(c.sess.subs, filter)
	switch {
	case err != nil:
		c.s.log.Warn("unsubscribe failed", "client_id", c.clientID, "filter", filter, "err", err)
		return packet.UnspecifiedError
	case !existed:
		return packet.NoSubscriptionExisted
	}
	return packet.Success
}

// mustRoute is the route of a filter already validated.
func mustRoute(tenant, id, filter string) dist.Route {
	r, _ := inbox.Route(tenant, id, filter)
	return r
}

package basekv

import (
	"encoding/binary"
	"time"
)

// Landscape is the cluster's shared, eventually consistent view that nodes
// publish into and read from; basecluster.Host implements it with CRDTs
// replicated over gossip. With a Landscape a node publishes its Raft
// address and each store's local range descriptors there, and resolves
// Raft peers and routes ranges from what the others published, instead of
// from the in-process Directory. (Calls to a range with no local replica
// still go to the holding node's Store in-process until the RPC layer
// lands.)
type Landscape interface {
	// Publish sets this node's value under topic.
	Publish(topic string, value []byte) error
	// Landscape returns the values live nodes published under topic, by
	// node id.
	Landscape(topic string) map[string][]byte
	// WatchLandscape returns a channel signalled after changes, and a stop
	// function.
	WatchLandscape() (<-chan struct{}, func())
}

// Landscape topics.
const (
	topicRaftAddr = "basekv/raft"
	topicStore    = "basekv/store/" // + store name: the node's local descriptors
)

// landscapeLoop keeps the directory's caches fresh with the landscape and
// publishes this node's stores when they change.
func (n *Node) landscapeLoop(watch <-chan struct{}, stop func()) {
	defer n.wg.Done()
	defer stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-watch:
			n.dir.changed()
		case <-n.publishC:
			n.publishStores()
		case <-tick.C:
			n.publishStores() // repairs a publication lost to a closing store race
		}
	}
}

// schedulePublish asks landscapeLoop to publish the stores' descriptors.
func (n *Node) schedulePublish() {
	if n.opts.Landscape == nil {
		return
	}
	select {
	case n.publishC <- struct{}{}:
	default:
	}
}

func (n *Node) publishStores() {
	n.mu.Lock()
	stores := make([]*Store, 0, len(n.mu.stores))
	for _, s := range n.mu.stores {
		stores = append(stores, s)
	}
	n.mu.Unlock()
	for _, s := range stores {
		descs := s.localDescriptors()
		b := binary.AppendUvarint(nil, uint64(len(descs)))
		for i := range descs {
			b = appendBytes(b, descs[i].marshal())
		}
		if err := n.opts.Landscape.Publish(topicStore+s.name, b); err != nil {
			n.log.Warn("publishing store descriptors", "store", s.name, "err", err)
		}
	}
}

// landscapeDescriptors decodes the descriptors each live node published
// for store name.
func (n *Node) landscapeDescriptors(name string) map[string][]RangeDescriptor {
	out := make(map[string][]RangeDescriptor)
	for node, b := range n.opts.Landscape.Landscape(topicStore + name) {
		d := newDecoder(b)
		cnt := d.Uvarint()
		for i := uint64(0); i < cnt && d.Err == nil; i++ {
			desc, err := unmarshalDescriptor(d.Bytes())
			if err != nil || d.Err != nil {
				break
			}
			out[node] = append(out[node], *desc)
		}
	}
	return out
}

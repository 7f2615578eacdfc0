// Package retain keeps retained messages in the retain.store basekv store,
// one per (tenant, topic): an empty payload clears the topic, message
// expiry is honoured when matching and by a GC pass, and a wildcard
// subscribe matches through an index, never by scanning a tenant's retained
// messages, capped by RetainMessageMatchLimit.
//
// Until the retain issue lands this package holds only this contract.
package retain

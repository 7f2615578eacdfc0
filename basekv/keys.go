package basekv

import "encoding/binary"

// On-disk layout of a store's pebble DB:
//
//	0x00 'f'                         store format version (uvarint)
//	0x00 'r' <rangeID:8> 'a'         range's applied Raft index (8 bytes BE)
//	0x00 'r' <rangeID:8> 'd'         range's descriptor (see desc.go)
//	'd' <key>                        a coprocessor key
//
// System keys sort before every data key, so a range's span of data keys is
// ['d'+start, 'd'+end), or up to dataEnd for an unbounded end.

const formatVersion = 1

var (
	formatKey = []byte{0, 'f'}
	dataStart = []byte{'d'}
	dataEnd   = []byte{'e'}
)

func rangeKey(id uint64, suffix byte) []byte {
	k := make([]byte, 0, 11)
	k = append(k, 0, 'r')
	k = binary.BigEndian.AppendUint64(k, id)
	return append(k, suffix)
}

func appliedKey(id uint64) []byte    { return rangeKey(id, 'a') }
func descriptorKey(id uint64) []byte { return rangeKey(id, 'd') }

// rangeMetaBounds are the bounds of every range's system keys.
var rangeMetaBounds = [2][]byte{{0, 'r'}, {0, 's'}}

func dataKey(k []byte) []byte {
	d := make([]byte, 0, len(k)+1)
	return append(append(d, 'd'), k...)
}

// dataSpan returns the data-key span of a boundary.
func dataSpan(start, end []byte) (lo, hi []byte) {
	lo = dataKey(start)
	if end == nil {
		return lo, dataEnd
	}
	return lo, dataKey(end)
}

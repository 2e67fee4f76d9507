package dst

import (
	crand "crypto/rand"
	"encoding/binary"
	"io"
	"math/rand/v2"
)

// seedCryptoRand replaces crypto/rand's Reader with a stream drawn from
// seed until restore is called. raft draws its election jitter with
// rand.Int(rand.Reader, ...), and the engine seeds its own source from
// crypto/rand: both then follow the seed. (testing/cryptotest's
// SetGlobalRandom does the same for tests; this works in `kintsu sim`
// too.) Nothing else in a simulation reads crypto/rand.
func seedCryptoRand(seed uint64) (restore func()) {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	copy(key[8:], "kintsu-dst-crypto-rand")
	old := crand.Reader
	crand.Reader = &chachaReader{c: rand.NewChaCha8(key)}
	return func() { crand.Reader = old }
}

type chachaReader struct{ c *rand.ChaCha8 }

func (r *chachaReader) Read(p []byte) (int, error) { return r.c.Read(p) }

var _ io.Reader = (*chachaReader)(nil)

package batch

import (
	"math/bits"
	"sync"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/bitutil"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// The columns of a txBuilder are written straight into Arrow buffers of
// the run's allocator: a builder holds at most its capacity of rows, so
// the fixed-width columns never grow, and a row costs a store per value
// (array.Int64Builder and StringBuilder check capacity and set a
// validity bit on every append).

// i64Col is an int64 (or timestamp) column of at most capacity rows.
type i64Col struct {
	buf *memory.Buffer
	v   []int64
	n   int
}

func (c *i64Col) init(mem memory.Allocator, capacity int) {
	c.buf = memory.NewResizableBuffer(mem)
	c.buf.Resize(capacity * arrow.Int64SizeBytes)
	c.v = arrow.Int64Traits.CastFromBytes(c.buf.Bytes())
	c.n = 0
}

func (c *i64Col) append(v int64) {
	c.v[c.n] = v
	c.n++
}

// array returns the rows appended as an array of type dt and starts a new
// buffer.
func (c *i64Col) array(mem memory.Allocator, dt arrow.DataType) arrow.Array {
	c.buf.ResizeNoShrink(c.n * arrow.Int64SizeBytes)
	data := array.NewData(dt, c.n, []*memory.Buffer{nil, c.buf}, nil, 0, 0)
	arr := array.MakeFromData(data)
	data.Release()
	c.buf.Release()
	c.init(mem, len(c.v))
	return arr
}

func (c *i64Col) release() { c.buf.Release() }

// strCol is a string column of at most capacity rows; valid, when
// nullable, is its validity bitmap.
type strCol struct {
	offBuf, dataBuf, validBuf *memory.Buffer
	off                       []int32
	data                      []byte // the data buffer's whole capacity
	valid                     []byte
	n, nulls, size            int
	capacity, reserve         int // rows; bytes of data to start with
	nullable                  bool
}

// strColData is the data a string column reserves per row to begin with;
// then as much as the previous array held.
const strColData = 16

func (c *strCol) init(mem memory.Allocator, capacity int, nullable bool) {
	c.capacity = capacity
	c.offBuf = memory.NewResizableBuffer(mem)
	c.offBuf.Resize((capacity + 1) * arrow.Int32SizeBytes)
	c.off = arrow.Int32Traits.CastFromBytes(c.offBuf.Bytes())
	c.dataBuf = memory.NewResizableBuffer(mem)
	c.reserve = max(c.reserve, capacity*strColData, 64)
	c.dataBuf.Reserve(c.reserve)
	c.data = c.dataBuf.Buf()
	c.nullable, c.validBuf, c.valid = nullable, nil, nil
	if nullable {
		c.validBuf = memory.NewResizableBuffer(mem)
		c.validBuf.Resize(int(bitutil.BytesForBits(int64(capacity))))
		c.valid = c.validBuf.Bytes()
		clear(c.valid)
	}
	c.n, c.nulls, c.size = 0, 0, 0
	c.off[0] = 0
}

func (c *strCol) append(v []byte) {
	if c.size+len(v) > len(c.data) {
		c.dataBuf.Reserve(max(2*len(c.data), c.size+len(v)))
		c.data = c.dataBuf.Buf()
	}
	copy(c.data[c.size:], v)
	c.size += len(v)
	if c.nullable {
		bitutil.SetBit(c.valid, c.n)
	}
	c.n++
	c.off[c.n] = int32(c.size)
}

func (c *strCol) appendString(v string) {
	if c.size+len(v) > len(c.data) {
		c.dataBuf.Reserve(max(2*len(c.data), c.size+len(v)))
		c.data = c.dataBuf.Buf()
	}
	copy(c.data[c.size:], v)
	c.size += len(v)
	if c.nullable {
		bitutil.SetBit(c.valid, c.n)
	}
	c.n++
	c.off[c.n] = int32(c.size)
}

// appendNull appends a null (the column must be nullable).
func (c *strCol) appendNull() {
	c.n++
	c.nulls++
	c.off[c.n] = int32(c.size)
}

// array returns the rows appended as a string array and starts new
// buffers.
func (c *strCol) array(mem memory.Allocator) arrow.Array {
	arr := c.build()
	c.init(mem, c.capacity, c.nullable)
	return arr
}

// build returns the rows appended as a string array; the column is empty
// and has no buffers then.
func (c *strCol) build() arrow.Array {
	c.offBuf.ResizeNoShrink((c.n + 1) * arrow.Int32SizeBytes)
	c.dataBuf.ResizeNoShrink(c.size)
	var valid *memory.Buffer
	if c.nullable && c.nulls > 0 {
		c.validBuf.ResizeNoShrink(int(bitutil.BytesForBits(int64(c.n))))
		valid = c.validBuf
	}
	data := array.NewData(arrow.BinaryTypes.String, c.n, []*memory.Buffer{valid, c.offBuf, c.dataBuf}, nil, c.nulls, 0)
	arr := array.MakeFromData(data)
	data.Release()
	c.release()
	c.reserve = c.size + c.size/8
	c.offBuf, c.dataBuf, c.validBuf = nil, nil, nil
	c.off, c.data, c.valid = nil, nil, nil
	return arr
}

func (c *strCol) release() {
	for _, b := range []*memory.Buffer{c.offBuf, c.dataBuf, c.validBuf} {
		if b != nil {
			b.Release()
		}
	}
}

// recycler is an allocator that hands out the memory of freed buffers
// again: the records of a run ask for the same few sizes over and over,
// and recycled memory is neither zeroed again nor left to the garbage
// collector. It serves buffers of at least recycleMin bytes from size
// classes (powers of two) and keeps at most recycleMax bytes; the rest
// goes to the allocator beneath. Its users do not expect zeroed memory.
// close returns what it keeps.
type recycler struct {
	mem    memory.Allocator
	mu     sync.Mutex
	free   map[int][][]byte // by capacity
	kept   int
	closed bool
}

const (
	recycleMin = 64 << 10
	recycleMax = 256 << 20
)

func newRecycler(mem memory.Allocator) *recycler {
	return &recycler{mem: mem, free: map[int][][]byte{}}
}

func (r *recycler) Allocate(size int) []byte {
	if size < recycleMin {
		return r.mem.Allocate(size)
	}
	class := 1 << bits.Len(uint(size-1))
	r.mu.Lock()
	if l := r.free[class]; len(l) > 0 {
		b := l[len(l)-1]
		r.free[class] = l[:len(l)-1]
		r.kept -= class
		r.mu.Unlock()
		return b[:size]
	}
	r.mu.Unlock()
	return r.mem.Allocate(class)[:size]
}

func (r *recycler) Reallocate(size int, b []byte) []byte {
	if cap(b) >= size {
		return b[:size]
	}
	nb := r.Allocate(size)
	copy(nb, b)
	r.Free(b)
	return nb
}

func (r *recycler) Free(b []byte) {
	c := cap(b)
	if c < recycleMin {
		r.mem.Free(b)
		return
	}
	b = b[:c] // as allocated
	r.mu.Lock()
	if r.closed || c&(c-1) != 0 || r.kept+c > recycleMax {
		r.mu.Unlock()
		r.mem.Free(b)
		return
	}
	r.free[c] = append(r.free[c], b)
	r.kept += c
	r.mu.Unlock()
}

// close returns the buffers kept to the allocator beneath; buffers freed
// after it go there at once.
func (r *recycler) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	for _, l := range r.free {
		for _, b := range l {
			r.mem.Free(b)
		}
	}
	r.free, r.kept = nil, 0
}

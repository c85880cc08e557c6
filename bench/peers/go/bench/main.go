// Go peer for the troupe benchmarks (standard library only).
//
//	go-bench <W1|W2|W3|W4|W5|W7|all> [--quick] [--threads N]
//
// --threads N sets GOMAXPROCS (default: $GOMAXPROCS or the Go default).
// Each measurement is one stdout line: RESULT <workload> go <threads> <value> <unit>.
// A checksum mismatch exits with status 1.
package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

var quick bool
var threads int

func result(w string, v float64, unit string) {
	fmt.Printf("RESULT %s go %d %.2f %s\n", w, threads, v, unit)
}

func fail(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "go bench: "+format+"\n", a...)
	os.Exit(1)
}

func pick(full, q int) int {
	if quick {
		return q
	}
	return full
}

// W1: two goroutines, unbuffered channels, N round trips.
func w1() {
	n := pick(2000000, 200000)
	ping := make(chan int)
	pong := make(chan int)
	go func() {
		for v := range ping {
			pong <- v + 1
		}
		close(pong)
	}()
	t0 := time.Now()
	v := 0
	for i := 0; i < n; i++ {
		ping <- v
		v = <-pong
	}
	el := time.Since(t0)
	close(ping)
	if v != n {
		fail("W1 checksum %d != %d", v, n)
	}
	result("W1", float64(el.Nanoseconds())/float64(n), "ns/roundtrip")
}

// W2: ring of N goroutines linked by unbuffered channels; a token (hop
// counter) goes around L laps.
func w2() {
	nodes := 1000
	laps := pick(1000, 100)
	total := nodes * laps
	chans := make([]chan int, nodes)
	for i := range chans {
		chans[i] = make(chan int)
	}
	done := make(chan int)
	for i := 1; i < nodes; i++ {
		in, out := chans[i], chans[(i+1)%nodes]
		go func() {
			for t := range in {
				out <- t + 1
			}
		}()
	}
	// node 0 is driven by this goroutine's partner below
	go func() {
		in, out := chans[0], chans[1]
		for t := range in {
			if t == total {
				done <- t
				return
			}
			out <- t + 1
		}
	}()
	t0 := time.Now()
	chans[0] <- 0
	t := <-done
	el := time.Since(t0)
	for i := 1; i < nodes; i++ {
		close(chans[i])
	}
	if t != total {
		fail("W2 checksum %d != %d", t, total)
	}
	result("W2", float64(el.Nanoseconds())/float64(total), "ns/hop")
}

// W3: spawn+exit of N goroutines, then skynet.
func w3() {
	n := pick(500000, 100000)
	var wg sync.WaitGroup
	var sum int64
	t0 := time.Now()
	wg.Add(n)
	for i := 0; i < n; i++ {
		go func(id int64) {
			atomic.AddInt64(&sum, id)
			wg.Done()
		}(int64(i))
	}
	wg.Wait()
	el := time.Since(t0)
	if want := int64(n) * int64(n-1) / 2; sum != want {
		fail("W3 checksum %d != %d", sum, want)
	}
	result("W3", float64(el.Nanoseconds())/float64(n), "ns/actor")

	leaves := pick(1000000, 100000)
	t0 = time.Now()
	c := make(chan int64)
	go skynet(c, 0, int64(leaves), 10)
	s := <-c
	el = time.Since(t0)
	if want := int64(leaves) * int64(leaves-1) / 2; s != want {
		fail("W3-skynet checksum %d != %d", s, want)
	}
	result("W3-skynet", float64(el.Nanoseconds())/1e6, "ms")
}

func skynet(c chan int64, num, size, div int64) {
	if size == 1 {
		c <- num
		return
	}
	rc := make(chan int64)
	var sum int64
	for i := int64(0); i < div; i++ {
		sub := num + i*(size/div)
		go skynet(rc, sub, size/div, div)
	}
	for i := int64(0); i < div; i++ {
		sum += <-rc
	}
	c <- sum
}

// W4: N:1, S senders each send M messages to one receiver over one
// buffered channel (the receiver's mailbox).
func w4() {
	senders := 20
	per := pick(200000, 20000)
	total := senders * per
	mbox := make(chan int64, 1024)
	done := make(chan int64)
	go func() {
		var sum int64
		for i := 0; i < total; i++ {
			sum += <-mbox
		}
		done <- sum
	}()
	start := make(chan struct{})
	for s := 0; s < senders; s++ {
		go func() {
			<-start
			for i := 0; i < per; i++ {
				mbox <- int64(i)
			}
		}()
	}
	runtime.Gosched()
	t0 := time.Now()
	close(start)
	sum := <-done
	el := time.Since(t0)
	if want := int64(senders) * int64(per) * int64(per-1) / 2; sum != want {
		fail("W4 checksum %d != %d", sum, want)
	}
	result("W4", float64(total)/el.Seconds(), "msgs/s")
}

func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		fail("statm: %v", err)
	}
	f := strings.Fields(string(b))
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// W5: idle footprint, N goroutines blocked in a channel receive.
func w5() {
	n := pick(100000, 20000)
	runtime.GC()
	before := rssBytes()
	chans := make([]chan int, n) // each goroutine has its own mailbox
	var wg sync.WaitGroup
	var sum int64
	wg.Add(n)
	for i := 0; i < n; i++ {
		c := make(chan int)
		chans[i] = c
		go func() {
			v := <-c
			atomic.AddInt64(&sum, int64(v))
			wg.Done()
		}()
	}
	// let every goroutine reach its receive
	for i := 0; i < 3; i++ {
		runtime.Gosched()
		time.Sleep(20 * time.Millisecond)
	}
	after := rssBytes()
	for i, c := range chans {
		c <- i
	}
	wg.Wait()
	if want := int64(n) * int64(n-1) / 2; sum != want {
		fail("W5 checksum %d != %d", sum, want)
	}
	result("W5", float64(after-before)/float64(n), "bytes/actor")
}

// W7: payload ping-pong with a ~256-byte structured message, copied on
// every send (the slice is cloned; the string is immutable).
type payload struct {
	Seq, A, B, C int64
	Name         string
	Vals         []int64
}

func (p payload) clone() payload {
	q := p
	q.Vals = append([]int64(nil), p.Vals...)
	return q
}

func w7() {
	msgs := pick(1000000, 100000)
	rounds := msgs / 2
	ping := make(chan payload)
	pong := make(chan payload)
	go func() {
		for m := range ping {
			r := m.clone()
			r.Seq++
			pong <- r
		}
	}()
	m := payload{A: 1, B: 2, C: 3,
		Name: strings.Repeat("troupe-payload-", 4)[:56],
		Vals: make([]int64, 16)}
	for i := range m.Vals {
		m.Vals[i] = int64(i)
	}
	fmt.Fprintf(os.Stderr, "W7 go: payload %d bytes\n", 4*8+len(m.Name)+8*len(m.Vals)+16+24)
	t0 := time.Now()
	for i := 0; i < rounds; i++ {
		s := m.clone()
		s.Seq++
		ping <- s
		m = <-pong
	}
	el := time.Since(t0)
	close(ping)
	var vs int64
	for _, v := range m.Vals {
		vs += v
	}
	if m.Seq != int64(2*rounds) || vs != 120 || m.A+m.B+m.C != 6 {
		fail("W7 checksum seq=%d vals=%d", m.Seq, vs)
	}
	result("W7", float64(el.Nanoseconds())/float64(2*rounds), "ns/msg")
}

func main() {
	quick = os.Getenv("QUICK") == "1"
	var which []string
	args := os.Args[1:]
	for i := 0; i < len(args); i++ {
		switch a := args[i]; a {
		case "--quick":
			quick = true
		case "--threads":
			i++
			if i >= len(args) {
				fail("--threads needs a value")
			}
			t, err := strconv.Atoi(args[i])
			if err != nil || t < 1 {
				fail("bad --threads %q", args[i])
			}
			runtime.GOMAXPROCS(t)
		default:
			which = append(which, strings.ToUpper(a))
		}
	}
	threads = runtime.GOMAXPROCS(0)
	_ = debug.SetGCPercent // default GC settings: no tuning
	all := map[string]func(){"W1": w1, "W2": w2, "W3": w3, "W4": w4, "W5": w5, "W7": w7}
	if len(which) == 0 || (len(which) == 1 && which[0] == "ALL") {
		which = nil
		for k := range all {
			which = append(which, k)
		}
		sort.Strings(which)
	}
	for _, w := range which {
		f, ok := all[w]
		if !ok {
			fail("unknown workload %q (have W1 W2 W3 W4 W5 W7)", w)
		}
		f()
	}
}

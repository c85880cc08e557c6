// W8 peer: Go net TCP echo server, one goroutine per connection.
//
//	go-echo --port P [--threads N]
//
// --threads N sets GOMAXPROCS.  Runs until killed.
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
)

func main() {
	port := 0
	args := os.Args[1:]
	for i := 0; i < len(args); i++ {
		if i+1 >= len(args) {
			break
		}
		switch args[i] {
		case "--port":
			port, _ = strconv.Atoi(args[i+1])
			i++
		case "--threads":
			if t, err := strconv.Atoi(args[i+1]); err == nil && t > 0 {
				runtime.GOMAXPROCS(t)
			}
			i++
		}
	}
	if port <= 0 {
		fmt.Fprintln(os.Stderr, "usage: go-echo --port P [--threads N]")
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		fmt.Fprintln(os.Stderr, "W8 go:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "W8 go: listening on %d (GOMAXPROCS %d)\n", port, runtime.GOMAXPROCS(0))
	for {
		c, err := ln.Accept()
		if err != nil {
			continue
		}
		go func(c net.Conn) {
			defer c.Close()
			io.Copy(c, c) // TCP_NODELAY is Go's default
		}(c)
	}
}

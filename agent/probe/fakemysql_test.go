package probe

import (
	"encoding/binary"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// fakeMySQL is a tiny server on 127.0.0.1:0 that behaves like one of the
// cases a probe must tell apart. It speaks just enough of the protocol.
type fakeMySQL struct {
	ln     net.Listener
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
	logins int // logins answered in fakeHandshake mode
}

type fakeMode int

const (
	fakeHandshake fakeMode = iota // send a v10 handshake and wait for the client to close
	fakeTooMany                   // send ERR 1040 instead of a handshake, then close
	fakeClose                     // accept and close at once (haproxy-like close after accept)
	fakeSilent                    // accept and never say anything
	fakeDeny                      // handshake, then answer any login with ERR 1045
	fakeIdleClose                 // handshake, then close after fakeIdleAfter
	fakeIdleErr                   // handshake, then ERR 4031 and close after fakeIdleAfter
)

const fakeIdleAfter = 300 * time.Millisecond

const fakeVersion = "10.11.6-MariaDB-fake"

func startFakeMySQL(t testing.TB, mode fakeMode) string {
	t.Helper()
	return startFake(t, mode).ln.Addr().String()
}

func (f *fakeMySQL) loginCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.logins
}

func startFake(t testing.TB, mode fakeMode) *fakeMySQL {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeMySQL{ln: ln}
	var id uint32
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			id++
			f.mu.Lock()
			f.conns = append(f.conns, c)
			f.mu.Unlock()
			f.wg.Add(1)
			go func(c net.Conn, id uint32) {
				defer f.wg.Done()
				defer c.Close()
				f.serve(c, mode, id)
			}(c, id)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		for _, c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
		f.wg.Wait()
	})
	return f
}

func (f *fakeMySQL) serve(c net.Conn, mode fakeMode, id uint32) {
	switch mode {
	case fakeClose:
		return
	case fakeSilent:
		io.Copy(io.Discard, c)
		return
	case fakeTooMany:
		fakeWrite(c, 0, errPacket(1040, "", "Too many connections"))
		return
	}
	fakeWrite(c, 0, handshakePacket(id))
	switch mode {
	case fakeDeny:
		if _, _, err := readPacket(c, 1<<16); err != nil {
			return
		}
		fakeWrite(c, 2, errPacket(1045, "28000", "Access denied for user 'probe'@'127.0.0.1' (using password: YES)"))
	case fakeIdleClose:
		time.Sleep(fakeIdleAfter)
	case fakeIdleErr:
		time.Sleep(fakeIdleAfter)
		fakeWrite(c, 0, errPacket(4031, "HY000", "The client was disconnected by the server because of inactivity."))
	default:
		// A server answers a login without a password for an unknown
		// user with 1045, then closes.
		if _, _, err := readPacket(c, 1<<16); err != nil {
			return
		}
		f.mu.Lock()
		f.logins++
		f.mu.Unlock()
		fakeWrite(c, 2, errPacket(1045, "28000", "Access denied for user 'haguard-probe'@'127.0.0.1' (using password: NO)"))
	}
}

func fakeWrite(w io.Writer, seq byte, p []byte) {
	hdr := []byte{byte(len(p)), byte(len(p) >> 8), byte(len(p) >> 16), seq}
	w.Write(append(hdr, p...))
}

func handshakePacket(id uint32) []byte {
	const caps = 0x0001 | 0x0200 | 0x2000 | 0x8000 | 0x80000 // long password, 4.1, transactions, secure conn, plugin auth
	p := []byte{10}
	p = append(p, fakeVersion...)
	p = append(p, 0)
	p = binary.LittleEndian.AppendUint32(p, id)
	p = append(p, "abcdefgh"...) // scramble part 1
	p = append(p, 0)
	p = binary.LittleEndian.AppendUint16(p, caps&0xffff)
	p = append(p, 0x21)                        // utf8
	p = binary.LittleEndian.AppendUint16(p, 2) // autocommit
	p = binary.LittleEndian.AppendUint16(p, caps>>16)
	p = append(p, 21)
	p = append(p, make([]byte, 10)...)
	p = append(p, "ijklmnopqrst"...) // scramble part 2
	p = append(p, 0)
	p = append(p, "mysql_native_password"...)
	return append(p, 0)
}

func errPacket(code uint16, state, msg string) []byte {
	p := []byte{0xff}
	p = binary.LittleEndian.AppendUint16(p, code)
	if state != "" {
		p = append(p, '#')
		p = append(p, state...)
	}
	return append(p, msg...)
}

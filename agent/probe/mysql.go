package probe

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
)

// maxHandshake bounds the first packet we accept; a real v10 handshake is
// well under 200 bytes.
const maxHandshake = 1 << 12

// Handshake is what a MySQL/MariaDB server says first (protocol v10).
type Handshake struct {
	ServerVersion string
	ConnectionID  uint32
}

// ProbeMySQL reads the server's v10 handshake through the path. With a
// user it then logs in with go-sql-driver/mysql and pings; "access denied"
// (1045) counts as OK with a note, since the path did reach the server.
// Failures: a timeout, a reset, the path closing right after accept, or an
// ERR packet instead of a handshake ("Too many connections", 1040).
func ProbeMySQL(ctx context.Context, t Target, r *Result, logger *slog.Logger) error {
	if t.User != "" {
		return mysqlLogin(ctx, t, r, logger)
	}
	conn, err := openHandshake(ctx, t.Address, r)
	if err != nil {
		return err
	}
	defer conn.Close()
	r.Note = finishHandshake(ctx, conn)
	return nil
}

// openHandshake dials addr and reads the server's v10 handshake into r
// (server version, connection id). The caller owns the open connection.
func openHandshake(ctx context.Context, addr string, r *Result) (net.Conn, error) {
	conn, err := dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	hs, err := ReadHandshake(conn)
	if err != nil {
		conn.Close()
		return nil, err
	}
	r.ServerVersion, r.ConnectionID = hs.ServerVersion, hs.ConnectionID
	return conn, nil
}

// NoLoginUser is the user name a credential-less mysql probe answers the
// handshake with. Create it without a password and without privileges
// (like haproxy's `mysql-check user`) to keep "access denied" lines out
// of the server's log; otherwise the server answers 1045, which is fine.
const NoLoginUser = "haguard-probe"

// finishTimeout bounds the wait for the answer to our login: the verdict
// is already in, this is only politeness.
const finishTimeout = time.Second

// Capability flags of our handshake response (protocol 4.1, secure
// connection, plugin auth, long password).
const probeCaps = 0x00000001 | 0x00000200 | 0x00008000 | 0x00080000

// finishHandshake answers the server's handshake with a login as
// NoLoginUser with no password, and then quits. Dropping the connection
// right after the handshake would count as a connection error for the
// client host: after max_connect_errors (100 by default) of those without
// a successful login in between, MariaDB and MySQL block the host (1129)
// when they resolve names, which would cut haproxy off from the server.
// An authentication failure does not count. The path already proved
// itself with the handshake, so what happens here only becomes a note.
func finishHandshake(ctx context.Context, conn net.Conn) string {
	dl := time.Now().Add(finishTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	if err := conn.SetDeadline(dl); err != nil {
		return err.Error()
	}
	resp := binary.LittleEndian.AppendUint32(nil, probeCaps)
	resp = binary.LittleEndian.AppendUint32(resp, 1<<24) // max packet
	resp = append(resp, 0x21)                            // utf8_general_ci
	resp = append(resp, make([]byte, 23)...)
	resp = append(resp, NoLoginUser...)
	resp = append(resp, 0, 0) // end of user; empty auth response
	resp = append(resp, "mysql_native_password"...)
	resp = append(resp, 0)
	seq := byte(1)
	if err := writePacket(conn, seq, resp); err != nil {
		return "no login answer sent: " + err.Error()
	}
	for range 3 { // OK, ERR, or at most a couple of auth switches
		s, p, err := readPacket(conn, 1<<16)
		if err != nil {
			return "no reply to the login: " + err.Error()
		}
		seq = s + 1
		switch {
		case len(p) == 0:
			return "empty reply to the login"
		case p[0] == 0x00:
			_ = writePacket(conn, 0, []byte{0x01}) // COM_QUIT
			return ""
		case p[0] == 0xff:
			if e := parseErrPacket(p); e.Code != errAccessDenied {
				return "login answer: " + e.Error()
			}
			return ""
		case p[0] == 0xfe: // auth switch: answer with an empty password
			if err := writePacket(conn, seq, nil); err != nil {
				return "no auth switch answer sent: " + err.Error()
			}
		default:
			return fmt.Sprintf("unexpected login reply 0x%02x", p[0])
		}
	}
	return "login did not finish"
}

func writePacket(w io.Writer, seq byte, payload []byte) error {
	n := len(payload)
	_, err := w.Write(append([]byte{byte(n), byte(n >> 8), byte(n >> 16), seq}, payload...))
	return err
}

// dial connects under ctx and makes every later read and write on the
// connection obey ctx's deadline too.
func dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			conn.Close()
			return nil, err
		}
	}
	return conn, nil
}

// ReadHandshake reads and decodes the first packet of a MySQL connection.
// An ERR packet becomes a *MySQLError (wrapped in a Failure); a peer that
// closes before sending anything is ReasonClosedEarly.
func ReadHandshake(rd io.Reader) (Handshake, error) {
	_, p, err := readPacket(rd, maxHandshake)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return Handshake{}, fail(ReasonClosedEarly, err)
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return Handshake{}, fail(ReasonBadHandshake, err)
		}
		return Handshake{}, err
	}
	return parseHandshake(p)
}

// readPacket reads one MySQL packet: 3-byte little-endian length, 1-byte
// sequence, payload. io.EOF means nothing at all was read.
func readPacket(rd io.Reader, limit int) (seq byte, payload []byte, err error) {
	var hdr [4]byte
	if _, err := io.ReadFull(rd, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16
	if n > limit {
		return 0, nil, failf(ReasonBadHandshake, "packet of %d bytes is larger than %d", n, limit)
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(rd, payload); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return hdr[3], payload, nil
}

func parseHandshake(p []byte) (Handshake, error) {
	if len(p) == 0 {
		return Handshake{}, failf(ReasonBadHandshake, "empty packet")
	}
	switch p[0] {
	case 0xff:
		return Handshake{}, fail("", parseErrPacket(p))
	case 10:
	default:
		return Handshake{}, failf(ReasonBadHandshake, "protocol version %d, want 10", p[0])
	}
	end := bytes.IndexByte(p[1:], 0)
	if end < 0 || len(p) < 1+end+1+4 {
		return Handshake{}, failf(ReasonBadHandshake, "truncated v10 handshake (%d bytes)", len(p))
	}
	hs := Handshake{ServerVersion: string(p[1 : 1+end])}
	hs.ConnectionID = binary.LittleEndian.Uint32(p[1+end+1:])
	return hs, nil
}

// parseErrPacket decodes an ERR packet (0xff, code, optional '#' + SQL
// state, message). Before the handshake servers omit the SQL state.
func parseErrPacket(p []byte) *MySQLError {
	e := &MySQLError{}
	if len(p) < 3 {
		e.Message = "truncated ERR packet"
		return e
	}
	e.Code = binary.LittleEndian.Uint16(p[1:3])
	rest := p[3:]
	if len(rest) >= 6 && rest[0] == '#' {
		e.State, rest = string(rest[1:6]), rest[6:]
	}
	e.Message = string(rest)
	return e
}

// errAccessDenied is MySQL's ER_ACCESS_DENIED_ERROR.
const errAccessDenied = 1045

// mysqlLogin logs in with go-sql-driver/mysql and pings. The handshake is
// read off the wire on its way to the driver, so the server version is
// known even when the login is refused.
func mysqlLogin(ctx context.Context, t Target, r *Result, logger *slog.Logger) error {
	s, err := openSession(ctx, t, logger)
	if s != nil {
		defer s.close()
		r.ServerVersion, r.ConnectionID = s.hs.ServerVersion, s.hs.ConnectionID
	}
	if err != nil {
		var me *MySQLError
		if errors.As(err, &me) && me.Code == errAccessDenied && s != nil && s.hs.ServerVersion != "" {
			r.Note = "access denied (1045): the path reached the server"
			return nil
		}
		return err
	}
	return s.conn.PingContext(ctx)
}

// session is one logged-in MySQL connection with its raw socket at hand
// (idle-hold reads the socket directly while the driver is idle).
type session struct {
	db   *sql.DB
	conn *sql.Conn
	raw  net.Conn
	hs   Handshake
}

func (s *session) close() {
	if s.conn != nil {
		s.conn.Close()
	}
	s.db.Close()
}

// openSession logs in to t. It returns a non-nil session whenever the
// handshake was seen, even if the login failed (so the caller can report
// the server version). A refused login comes back as *MySQLError.
func openSession(ctx context.Context, t Target, logger *slog.Logger) (*session, error) {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd = t.User, t.Password
	cfg.Net, cfg.Addr = "tcp", t.Address
	cfg.Logger = driverLogger{logger}
	cfg.CheckConnLiveness = false
	if dl, ok := ctx.Deadline(); ok {
		cfg.Timeout = time.Until(dl)
	}
	sniff := &sniffer{}
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		sniff.set(c)
		return &sniffConn{Conn: c, s: sniff}, nil
	}
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("mysql config: %w", err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(1)
	s := &session{db: db}
	conn, err := db.Conn(ctx)
	s.raw, s.hs = sniff.result()
	if err != nil {
		if s.raw == nil {
			db.Close()
			return nil, err
		}
		return s, loginError(err, sniff)
	}
	s.conn = conn
	return s, nil
}

// loginError turns the driver's error into ours: an ERR packet becomes a
// *MySQLError, a path that closed before the handshake ReasonClosedEarly.
func loginError(err error, sniff *sniffer) error {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		state := string(me.SQLState[:])
		if me.SQLState == [5]byte{} {
			state = ""
		}
		return fail("", &MySQLError{Code: me.Number, State: state, Message: me.Message})
	}
	if hsErr := sniff.err(); hsErr != nil {
		return hsErr
	}
	if !sniff.seen() && netReason(err) != ReasonTimeout {
		// Nothing arrived and it was not a timeout: the path closed (or
		// reset) right after accepting.
		return fail(ReasonClosedEarly, err)
	}
	return err
}

// sniffer keeps the raw connection and decodes the first packet that the
// server sends, as it passes to the driver.
type sniffer struct {
	mu    sync.Mutex
	raw   net.Conn
	buf   []byte
	done  bool
	hs    Handshake
	hsErr error
}

func (s *sniffer) set(c net.Conn) {
	s.mu.Lock()
	s.raw = c
	s.mu.Unlock()
}

func (s *sniffer) result() (net.Conn, Handshake) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.raw, s.hs
}

// err is the handshake's own error (an ERR packet instead of a v10
// greeting), if any.
func (s *sniffer) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hsErr
}

// seen reports whether any byte came from the server.
func (s *sniffer) seen() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.done || len(s.buf) > 0
}

func (s *sniffer) feed(b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return
	}
	s.buf = append(s.buf, b...)
	if len(s.buf) < 4 {
		return
	}
	n := int(s.buf[0]) | int(s.buf[1])<<8 | int(s.buf[2])<<16
	if len(s.buf) < 4+n && len(s.buf) < maxHandshake {
		return
	}
	s.done = true
	s.hs, s.hsErr = parseHandshake(s.buf[4:min(len(s.buf), 4+n)])
	s.buf = nil
}

type sniffConn struct {
	net.Conn
	s *sniffer
}

func (c *sniffConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.s.feed(b[:n])
	}
	return n, err
}

// driverLogger sends the driver's complaints to our logger at debug level
// instead of its default global logger on stderr.
type driverLogger struct{ l *slog.Logger }

func (d driverLogger) Print(v ...any) {
	if d.l != nil {
		d.l.Debug("mysql driver", "msg", fmt.Sprint(v...))
	}
}

package api

import (
	"archive/tar"
	"bytes"
	"errors"
	"mime/multipart"
	"testing"
)

func TestParseCandidate(t *testing.T) {
	text, files, err := parseCandidate("text/plain; charset=utf-8", []byte("global\n"))
	if err != nil || string(text) != "global\n" || files != nil {
		t.Fatalf("text/plain: %q %v %v", text, files, err)
	}

	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	tw.WriteHeader(&tar.Header{Name: "etc/haproxy/conf.d/", Typeflag: tar.TypeDir, Mode: 0o755})
	for name, body := range map[string]string{"etc/haproxy/haproxy.cfg": "global\n", "etc/haproxy/conf.d/10-app.cfg": "frontend x\n"} {
		tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))})
		tw.Write([]byte(body))
	}
	tw.Close()
	_, files, err = parseCandidate("application/x-tar", tb.Bytes())
	if err != nil || string(files["/etc/haproxy/haproxy.cfg"]) != "global\n" || string(files["/etc/haproxy/conf.d/10-app.cfg"]) != "frontend x\n" {
		t.Fatalf("tar: %v %v", files, err)
	}
	if _, dir := files["/etc/haproxy/conf.d/"]; !dir {
		t.Errorf("tar: the directory entry is lost: %v", files)
	}

	var mb bytes.Buffer
	mw := multipart.NewWriter(&mb)
	fw, _ := mw.CreateFormFile("/etc/haproxy/maps/hosts.map", "hosts.map")
	fw.Write([]byte("example.com green\n"))
	mw.Close()
	_, files, err = parseCandidate(mw.FormDataContentType(), mb.Bytes())
	if err != nil || string(files["/etc/haproxy/maps/hosts.map"]) != "example.com green\n" {
		t.Fatalf("multipart: %v %v", files, err)
	}

	// Hostile bodies: a name that climbs out, a link, an unknown type.
	for name, body := range map[string][]byte{"climb": tarOf(t, "../../etc/shadow", tar.TypeReg), "link": tarOf(t, "etc/haproxy/x", tar.TypeSymlink)} {
		var ve *ValidationError
		if _, _, err := parseCandidate("application/x-tar", body); !errors.As(err, &ve) {
			t.Errorf("%s: err %v, want a ValidationError", name, err)
		}
	}
	var ve *ValidationError
	if _, _, err := parseCandidate("application/zip", []byte("PK")); !errors.As(err, &ve) || ve.Field != "Content-Type" {
		t.Errorf("zip: %v", err)
	}
}

func tarOf(t *testing.T, name string, typ byte) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	tw.WriteHeader(&tar.Header{Name: name, Typeflag: typ, Linkname: "/etc/shadow", Mode: 0o644})
	tw.Close()
	return b.Bytes()
}

package api

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"path"
	"sort"
	"strings"
)

// maxCandidateFiles bounds the files of one candidate set.
const maxCandidateFiles = 4096

// parseCandidate reads a reload's body by its content type: text/plain
// (or none) is the main config file; application/x-tar is a tree that
// mirrors the config set by absolute path (etc/haproxy/haproxy.cfg,
// etc/haproxy/conf.d/10-app.cfg; a -f directory in it is that
// directory's whole new content); multipart/form-data has one part per
// file, named by its absolute path. Names that climb out of the root,
// links and special files are refused (422).
func parseCandidate(contentType string, body []byte) (text []byte, files map[string][]byte, err error) {
	mt, params, perr := mime.ParseMediaType(contentType)
	if contentType == "" || perr == nil && (mt == "text/plain" || mt == "application/octet-stream") {
		return body, nil, nil
	}
	if perr != nil {
		return nil, nil, &ValidationError{Field: "Content-Type", Reason: perr.Error()}
	}
	switch mt {
	case "application/x-tar", "application/tar":
		files, err = readTar(body)
	case "multipart/form-data":
		files, err = readMultipart(body, params["boundary"])
	default:
		return nil, nil, &ValidationError{Field: "Content-Type",
			Reason: fmt.Sprintf("%q: want text/plain (the main config file), application/x-tar or multipart/form-data (a config set)", mt)}
	}
	if err != nil {
		return nil, nil, err
	}
	if len(files) == 0 {
		return nil, nil, &ValidationError{Field: "body", Reason: "the config set holds no file"}
	}
	return nil, files, nil
}

// setPath turns a member name into the absolute path it stands for.
func setPath(name string) (string, error) {
	p := path.Clean("/" + strings.TrimPrefix(name, "./"))
	if strings.Contains(name, "..") || p == "/" || strings.ContainsRune(name, 0) {
		return "", &ValidationError{Field: "body", Reason: fmt.Sprintf("%q is not a path in the config set", name)}
	}
	return p, nil
}

func readTar(body []byte) (map[string][]byte, error) {
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(body))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, nil
		}
		if err != nil {
			return nil, &ValidationError{Field: "body", Reason: "bad tar: " + err.Error()}
		}
		p, err := setPath(h.Name)
		if err != nil {
			return nil, err
		}
		switch h.Typeflag {
		case tar.TypeDir:
			files[p+"/"] = nil // a directory given whole
			continue
		case tar.TypeReg:
		default:
			return nil, &ValidationError{Field: "body", Reason: fmt.Sprintf("%s: not a regular file (links and special files are refused)", h.Name)}
		}
		if len(files) >= maxCandidateFiles {
			return nil, &ValidationError{Field: "body", Reason: fmt.Sprintf("more than %d files", maxCandidateFiles)}
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, &ValidationError{Field: "body", Reason: "bad tar: " + err.Error()}
		}
		files[p] = b
	}
}

func readMultipart(body []byte, boundary string) (map[string][]byte, error) {
	if boundary == "" {
		return nil, &ValidationError{Field: "Content-Type", Reason: "multipart/form-data without a boundary"}
	}
	files := map[string][]byte{}
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return files, nil
		}
		if err != nil {
			return nil, &ValidationError{Field: "body", Reason: "bad multipart body: " + err.Error()}
		}
		name := part.FormName()
		if name == "" {
			name = part.FileName()
		}
		p, err := setPath(name)
		if err != nil {
			return nil, err
		}
		if len(files) >= maxCandidateFiles {
			return nil, &ValidationError{Field: "body", Reason: fmt.Sprintf("more than %d files", maxCandidateFiles)}
		}
		b, err := io.ReadAll(part)
		if err != nil {
			return nil, &ValidationError{Field: "body", Reason: "bad multipart body: " + err.Error()}
		}
		if _, dup := files[p]; dup {
			return nil, &ValidationError{Field: "body", Reason: p + " is given twice"}
		}
		files[p] = b
	}
}

// filesKey is a stable digest of a config set, for coalescing.
func filesKey(files map[string][]byte) string {
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	h := sha256.New()
	for _, p := range paths {
		s := sha256.Sum256(files[p])
		fmt.Fprintf(h, "%s\x00%x\n", p, s)
	}
	return hex.EncodeToString(h.Sum(nil))
}

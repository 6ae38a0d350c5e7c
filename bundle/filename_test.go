package bundle

import (
	"errors"
	"strings"
	"testing"
)

func TestParseFileName(t *testing.T) {
	tests := []struct {
		in      string
		want    FileName
		wantKey string
		wantErr error
	}{
		{"hello.zip", FileName{"hello", "", ExtZip}, "hello", nil},
		{"shop##2.tar.gz", FileName{"shop", "2", ExtTarGz}, "shop##2", nil},
		{"shop##v1.2_rc-3.tgz", FileName{"shop", "v1.2_rc-3", ExtTgz}, "shop##v1.2_rc-3", nil},
		{"a.b-c_d.zip", FileName{"a.b-c_d", "", ExtZip}, "a.b-c_d", nil},
		{"0.zip", FileName{"0", "", ExtZip}, "0", nil},
		{strings.Repeat("a", 63) + ".zip", FileName{strings.Repeat("a", 63), "", ExtZip}, strings.Repeat("a", 63), nil},
		{"hello.tar", FileName{}, "", ErrUnsupportedFormat},
		{"hello.ZIP", FileName{}, "", ErrUnsupportedFormat},
		{"hello", FileName{}, "", ErrUnsupportedFormat},
		{".zip", FileName{}, "", ErrBadFileName},
		{"Hello.zip", FileName{}, "", ErrBadFileName},
		{"-x.zip", FileName{}, "", ErrBadFileName},
		{".hidden.zip", FileName{}, "", ErrBadFileName},
		{"a b.zip", FileName{}, "", ErrBadFileName},
		{strings.Repeat("a", 64) + ".zip", FileName{}, "", ErrBadFileName},
		{"shop##.zip", FileName{}, "", ErrBadFileName},
		{"shop##..zip", FileName{}, "", ErrBadFileName},
		{"shop##a##b.zip", FileName{}, "", ErrBadFileName},
		{"shop##a/b.zip", FileName{}, "", ErrBadFileName},
		{"shop##" + strings.Repeat("1", 65) + ".zip", FileName{}, "", ErrBadFileName},
		{"../x.zip", FileName{}, "", ErrBadFileName},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseFileName(tt.in)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ParseFileName(%q) error = %v, want %v", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseFileName(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("ParseFileName(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if got.Key() != tt.wantKey {
				t.Errorf("Key() = %q, want %q", got.Key(), tt.wantKey)
			}
			if got.String() != tt.in {
				t.Errorf("String() = %q, want %q", got.String(), tt.in)
			}
		})
	}
}

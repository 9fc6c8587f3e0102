package web_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/plaithq/plait/web"
)

// Serving the user interface and the client library.
func Example() {
	srv := httptest.NewServer(http.FileServerFS(web.Files))
	defer srv.Close()

	res, err := http.Get(srv.URL + "/plait.js")
	if err != nil {
		panic(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	fmt.Println(res.StatusCode, strings.Contains(string(body), "export class Client"))
	// Output: 200 true
}

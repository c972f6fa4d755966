// Pulseboard web app configuration.
//
// PULSEBOARD_API is the base URL of the Pulseboard HTTP API.
// Empty string = the same origin that serves this page (the default when the
// app is served by `pulseboard serve`). A deployment that serves these files
// from another origin (e.g. nginx on port 80) replaces this file with, say:
//
//   window.PULSEBOARD_API = "http://localhost:8080";
//
// That origin must list this page's origin in its allowed CORS origins.
window.PULSEBOARD_API = "";

// zonekeeper: starts Swagger UI on /api/docs from the vendored bundle (no inline script:
// the page has the console's CSP, default-src 'self'). The OpenAPI document's URL is the
// data-openapi attribute of #swagger-ui.
"use strict";

window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-openapi"),
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    // Never ask swagger.io to validate the document (an image from another origin).
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  });
});

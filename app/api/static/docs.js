// Starts Swagger UI on /api/docs with the settings the page carries (no inline script).
window.addEventListener('load', function () {
  var container = document.getElementById('swagger-ui-container');
  var config = { url: container.dataset.specUrl, dom_id: '#swagger-ui-container' };
  var extra = JSON.parse(container.dataset.config || '{}');
  for (var name in extra) config[name] = extra[name];
  window.ui = SwaggerUIBundle(config);
});

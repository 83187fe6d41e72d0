// Bookinfo's ratings service: the stars two reviewers gave book 0. Reviews v2 and v3 ask it.
'use strict';
const { identity, sendJson, serve } = require('./http-json');

const self = identity('ratings');

serve('ratings', (request, response) => {
  if (request.method !== 'GET' || !/^\/ratings\/\d+$/.test(request.url.split('?')[0])) {
    return sendJson(response, 404, { error: `no such resource: ${request.method} ${request.url}` });
  }
  sendJson(response, 200, { ...self, id: Number(request.url.split('/')[2]), ratings: { Reviewer1: 5, Reviewer2: 4 } });
});
